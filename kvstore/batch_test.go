package kvstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
)

// atomicStores returns, by name, stores whose creates are atomic batches:
// a memory bucket on one server and, unless -short, an R3 bucket on a
// 3-node cluster.
func atomicStores(t *testing.T) map[string]func(t *testing.T) *Store {
	stores := map[string]func(t *testing.T) *Store{
		"memory": func(t *testing.T) *Store {
			cfg := DefaultConfig()
			cfg.Storage = jetstream.MemoryStorage
			return newTestStore(t, natstest.JetStream(t, natstest.RunServer(t)), cfg)
		},
	}
	if !testing.Short() {
		stores["R3"] = func(t *testing.T) *Store {
			cfg := DefaultConfig()
			cfg.Replicas = 3
			return newTestStore(t, natstest.JetStream(t, natstest.RunCluster(t, 3)[0]), cfg)
		}
	}
	return stores
}

func newTestStore(t testing.TB, js jetstream.JetStream, cfg Config) *Store {
	t.Helper()
	st, err := New(natstest.Context(t), js, cfg)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func testSession(login, token string, createTime time.Time) *bus.Session {
	return &bus.Session{SessionID: uuid.NewString(), LoginID: login, ServiceID: "svc", CreateTime: createTime,
		LastAccess: createTime, ExpiresAt: createTime.Add(time.Minute), Attributes: map[string]string{},
		TokenFingerprint: bus.TokenFingerprint(nil, token)}
}

// TestStore_AtomicCreateWritesAllOrNothing: where creates are one atomic
// batch, a create writes its record and both index entries in one batch,
// and a create refused for any reason (token in use, a fence, a lost
// claim) writes nothing at all: the stream does not move. Creating over a
// delete marker still works.
func TestStore_AtomicCreateWritesAllOrNothing(t *testing.T) {
	for name, newStore := range atomicStores(t) {
		t.Run(name, func(t *testing.T) {
			st := newStore(t)
			ctx := natstest.Context(t)
			require.True(t, st.atomicCreate.Load())
			head := func() uint64 {
				h, err := st.Head(ctx)
				require.NoError(t, err)
				return h
			}
			refused := func(t *testing.T, s *bus.Session, c bus.Change, want error) {
				t.Helper()
				before := head()
				_, err := st.CreateSession(ctx, s, c)
				require.ErrorIs(t, err, want)
				assert.Equal(t, before, head(), "a refused create writes nothing")
				_, err = st.lastMsg(ctx, loginKey(s.LoginID, s.SessionID))
				assert.ErrorIs(t, err, jetstream.ErrMsgNotFound, "no login index entry")
			}

			s := testSession("u", "tok", time.Now())
			before := head()
			r, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
			require.NoError(t, err)
			assert.Equal(t, before+3, head(), "three writes")
			assert.Equal(t, before+3, r, "the record is the batch's last write")
			msg, err := st.lastMsg(ctx, sessionKey(s.SessionID))
			require.NoError(t, err)
			assert.NotEmpty(t, msg.Header.Get(hdrBatchID), "written as a batch")
			for _, key := range []string{loginKey("u", s.SessionID), tokenKey(s.TokenFingerprint)} {
				e, err := st.lastMsg(ctx, key)
				require.NoError(t, err)
				assert.Equal(t, msg.Header.Get(hdrBatchID), e.Header.Get(hdrBatchID), key)
			}

			t.Run("token in use", func(t *testing.T) {
				refused(t, testSession("v", "tok", time.Now()), bus.Change{Op: bus.OpCreated}, bus.ErrTokenInUse)
			})
			t.Run("session id exists", func(t *testing.T) {
				again := testSession("u", "other-tok", time.Now())
				again.SessionID = s.SessionID
				before := head()
				_, err := st.CreateSession(ctx, again, bus.Change{Op: bus.OpCreated})
				require.ErrorIs(t, err, bus.ErrConflict)
				assert.Equal(t, before, head())
			})
			t.Run("fence", func(t *testing.T) {
				created := time.Now()
				require.NoError(t, st.SetLoginFence(ctx, "fenced", created.Add(time.Millisecond), time.Minute))
				refused(t, testSession("fenced", "tok-f", created), bus.Change{Op: bus.OpCreated}, bus.ErrConflict)
				// A create after the fence passes it.
				_, err := st.CreateSession(ctx, testSession("fenced", "tok-f", time.Now().Add(time.Second)), bus.Change{Op: bus.OpCreated})
				require.NoError(t, err)
			})
			t.Run("claim lost", func(t *testing.T) {
				created := time.Now()
				claim, err := st.ClaimLogin(ctx, "claimed", created, time.Minute)
				require.NoError(t, err)
				_, err = st.ClaimLogin(ctx, "claimed", created, time.Minute) // another create's claim
				require.NoError(t, err)
				refused(t, testSession("claimed", "tok-c", created), bus.Change{Op: bus.OpCreated, Claim: claim}, bus.ErrClaimLost)
			})
			t.Run("over a delete marker", func(t *testing.T) {
				s := testSession("m", "tok-m", time.Now())
				_, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
				require.NoError(t, err)
				got, err := st.GetSession(ctx, s.SessionID)
				require.NoError(t, err)
				require.NoError(t, st.DeleteSession(ctx, got, bus.Change{Op: bus.OpDeleted, Reason: bus.ReasonLogout}))
				_, err = st.lastMsg(ctx, tokenKey(s.TokenFingerprint))
				require.NoError(t, err, "the token key holds a marker")
				again := testSession("m", "tok-m", time.Now())
				_, err = st.CreateSession(ctx, again, bus.Change{Op: bus.OpCreated})
				require.NoError(t, err)
				id, err := st.SessionIDByToken(ctx, again.TokenFingerprint)
				require.NoError(t, err)
				assert.Equal(t, again.SessionID, id)
			})
		})
	}
}

// TestStore_AtomicCreateOnExistingBucket: a bucket created without atomic
// batch publish (as nats.go creates buckets) is updated to allow it; a
// stream that refuses batches later makes creates take two steps.
func TestStore_AtomicCreateOnExistingBucket(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := natstest.Context(t)
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "sessions", History: 1,
		Storage: jetstream.MemoryStorage, LimitMarkerTTL: time.Hour})
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Storage = jetstream.MemoryStorage
	st := newTestStore(t, js, cfg)
	stream, err := js.Stream(ctx, StreamName("sessions"))
	require.NoError(t, err)
	streamCfg := stream.CachedInfo().Config
	require.True(t, streamCfg.AllowAtomicPublish, "the store turned atomic publish on")
	require.True(t, st.atomicCreate.Load())

	// Someone turns it off again.
	streamCfg.AllowAtomicPublish = false
	_, err = js.UpdateStream(ctx, streamCfg)
	require.NoError(t, err)
	s := testSession("u", "tok", time.Now())
	_, err = st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
	require.NoError(t, err, "the create took two steps")
	assert.False(t, st.atomicCreate.Load())
	_, err = st.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
}

// TestStore_FileBucketCreatesInSteps: a file bucket of one replica, where
// the server stages batches in synced files, keeps two-step creates and is
// left as it was.
func TestStore_FileBucketCreatesInSteps(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t, natstest.RunServer(t))
	st := newTestStore(t, js, DefaultConfig())
	assert.False(t, st.atomicCreate.Load())
	stream, err := js.Stream(natstest.Context(t), StreamName("sessions"))
	require.NoError(t, err)
	assert.False(t, stream.CachedInfo().Config.AllowAtomicPublish)
}

// TestStore_AtomicCreatesOfOneLogin: concurrent creates of one login
// (conditions on one fence key) all commit, each with its index entries.
func TestStore_AtomicCreatesOfOneLogin(t *testing.T) {
	for name, newStore := range atomicStores(t) {
		t.Run(name, func(t *testing.T) {
			st := newStore(t)
			ctx := natstest.Context(t)
			const n = 32
			errs := make(chan error, n)
			for i := range n {
				go func() {
					_, err := st.CreateSession(ctx, testSession("busy", fmt.Sprint("tok-", i), time.Now()), bus.Change{Op: bus.OpCreated})
					errs <- err
				}()
			}
			t0 := time.Now()
			for range n {
				assert.NoError(t, <-errs)
			}
			t.Logf("%d creates of one login: %v", n, time.Since(t0))
			ids, err := st.SessionIDsByLogin(ctx, "busy")
			require.NoError(t, err)
			assert.Len(t, ids, n)
		})
	}
}
