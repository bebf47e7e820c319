package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

func liveKeys(t *testing.T, kv jetstream.KeyValue) []string {
	t.Helper()
	keys, err := kv.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	require.NoError(t, err)
	return keys
}

func TestStore_NothingOutlivesItsSession(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for TTLs")
	}
	t.Parallel()
	cfg := kvstore.DefaultConfig()
	cfg.MaxEventLag = time.Second // records outlive their sessions by twice that
	st, err := kvstore.New(context.Background(), natstest.JetStream(t, natstest.RunServer(t)), cfg)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	m, err := bus.New(st, "svc", 2*time.Second, bus.WithFenceTTL(time.Second))
	require.NoError(t, err)
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		s, err := m.CreateSession(ctx, fmt.Sprintf("user.%d", i%2), fmt.Sprintf("tok-%d", i))
		require.NoError(t, err)
		require.NoError(t, m.SetAttribute(ctx, s.SessionID, "k", "v"))
		ids = append(ids, s.SessionID)
	}
	require.NoError(t, m.DeleteSession(ctx, ids[0]))
	require.NoError(t, m.DeleteSessionByToken(ctx, "tok-1"))
	_, err = m.RefreshSession(ctx, ids[2])
	require.NoError(t, err)
	_, err = m.DeleteAllSessions(ctx, "user.1")
	require.NoError(t, err)
	assert.NotEmpty(t, liveKeys(t, st.Bucket()))

	require.Eventually(t, func() bool { return len(liveKeys(t, st.Bucket())) == 0 },
		natstest.Patience, 100*time.Millisecond, "the server expires every session, index entry and fence")
}

func TestStore_RefusesBucketWithoutTTL(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "sessions"})
	require.NoError(t, err)
	_, err = kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.ErrorIs(t, err, kvstore.ErrBucketNoTTL)
}

func TestStore_OpensExistingBucket(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t, natstest.RunServer(t))
	ctx := context.Background()
	st1, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.NoError(t, err)
	m, err := bus.New(st1, "svc", time.Minute)
	require.NoError(t, err)
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	st2, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.NoError(t, err)
	got, err := st2.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "u", got.LoginID)
}

func TestConfig_Invalid(t *testing.T) {
	js := natstest.JetStream(t, natstest.RunServer(t))
	tests := []struct {
		name string
		give func(*kvstore.Config)
	}{
		{"same buckets", func(c *kvstore.Config) { c.ServicesBucket = c.Bucket }},
		{"no replicas", func(c *kvstore.Config) { c.Replicas = 0 }},
		{"short marker TTL", func(c *kvstore.Config) { c.MarkerTTL = time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kvstore.DefaultConfig()
			tt.give(&cfg)
			_, err := kvstore.New(context.Background(), js, cfg)
			require.ErrorIs(t, err, kvstore.ErrInvalidConfig)
		})
	}
}

// TestStore_FeedRecordsEveryChange: the store's change feed yields each
// change once, with its acting service, reason and keys, and nothing that
// is secret (the record's token, fingerprint or attribute values).
func TestStore_FeedRecordsEveryChange(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	ctx := bus.ContextWithService(context.Background(), "order-api")
	head, err := st.Head(ctx)
	require.NoError(t, err)
	cur, err := st.Follow(ctx, head)
	require.NoError(t, err)
	t.Cleanup(cur.Stop)

	s, err := m.CreateSession(ctx, "u", "tok-SECRET")
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "role", "VALUE-admin"))
	require.NoError(t, m.DeleteSession(ctx, s.SessionID))

	var got []bus.ChangeRecord
	for len(got) < 3 {
		b, err := cur.Next(ctx)
		require.NoError(t, err)
		got = append(got, b.Changes...)
	}
	require.Len(t, got, 3)
	for i, want := range []struct {
		op     bus.ChangeOp
		keys   []string
		reason string
	}{{bus.OpCreated, nil, ""}, {bus.OpUpdated, []string{"role"}, ""}, {bus.OpDeleted, nil, bus.ReasonLogout}} {
		r := got[i]
		assert.Equal(t, want.op, r.Op)
		assert.Equal(t, want.keys, r.Keys)
		assert.Equal(t, want.reason, r.Reason)
		assert.Equal(t, s.SessionID, r.SessionID)
		assert.Equal(t, "u", r.LoginID)
		assert.Equal(t, "order-api", r.ServiceID)
		assert.False(t, r.Repeat)
		assert.NotContains(t, fmt.Sprintf("%+v", r), "SECRET")
		assert.NotContains(t, fmt.Sprintf("%+v", r), "VALUE")
	}
	assert.Less(t, got[0].Seq, got[1].Seq)
	assert.Less(t, got[1].Seq, got[2].Seq)
}

// TestStore_RefusesWritesBeforeLosingAChange: while the feed's reader is
// known and does not deliver, a session takes at most maxLogEntries (64)
// changes more; the next write is refused with ErrEventsBehind and writes
// nothing. A delete is never refused, and carries every undelivered change:
// a reader that starts afterwards still gets all of them. Once the reader
// delivers, writes go through again.
func TestStore_RefusesWritesBeforeLosingAChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := reopenDelivered(t, kvstore.DefaultConfig(), time.Now())
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	start, err := st.Head(ctx)
	require.NoError(t, err)

	s, err := m.CreateSession(ctx, "u", "tok")
	require.NoError(t, err)
	var refused error
	n := 0
	for ; n < 100 && refused == nil; n++ {
		refused = m.SetAttribute(ctx, s.SessionID, "n", fmt.Sprint(n))
	}
	require.ErrorIs(t, refused, bus.ErrEventsBehind)
	assert.Equal(t, 65, n, "64 changes kept, the 65th refused")
	v, _, err := m.GetAttribute(ctx, s.SessionID, "n")
	require.NoError(t, err)
	assert.Equal(t, "63", v, "the refused write wrote nothing")
	assert.Equal(t, "events_behind", bus.CodeOf(refused).Name)

	// A logout is never held back, and loses nothing.
	require.NoError(t, m.DeleteSession(ctx, s.SessionID))
	cur, err := st.Follow(ctx, start)
	require.NoError(t, err)
	t.Cleanup(cur.Stop)
	var ops []bus.ChangeOp
	for len(ops) < 66 {
		b, err := cur.Next(ctx)
		require.NoError(t, err)
		for _, c := range b.Changes {
			if c.SessionID == s.SessionID {
				ops = append(ops, c.Op)
			}
		}
	}
	require.Len(t, ops, 66, "create, 64 updates, delete")
	assert.Equal(t, bus.OpCreated, ops[0])
	assert.Equal(t, bus.OpDeleted, ops[65])

	// The bound is per session; once the reader catches up, writes go
	// through again.
	s, err = m.CreateSession(ctx, "u", "tok-2")
	require.NoError(t, err, "another session's log is no bound on this one")
	for i := range 64 {
		require.NoError(t, m.SetAttribute(ctx, s.SessionID, "n", fmt.Sprint(i)))
	}
	require.ErrorIs(t, m.SetAttribute(ctx, s.SessionID, "n", "y"), bus.ErrEventsBehind)
	head, err := st.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Delivered(ctx, bus.Delivery{Position: head, AsOf: time.Now()}))
	require.Eventually(t, func() bool {
		return m.SetAttribute(ctx, s.SessionID, "n", "after") == nil
	}, natstest.Patience, 10*time.Millisecond)
}

// reopenDelivered records a reader's delivery (at the head, as of asOf) in
// a fresh store, and returns a second store with cfg on the same bucket,
// which knows the delivery from the start.
func reopenDelivered(t *testing.T, cfg kvstore.Config, asOf time.Time) *kvstore.Store {
	t.Helper()
	ctx := context.Background()
	first := newStore(t)
	head, err := first.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, first.Delivered(ctx, bus.Delivery{Position: head, AsOf: asOf}))
	st, err := kvstore.New(ctx, first.JetStream(), cfg)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

// TestStore_RefusesWritesWhileTheReaderLags: a reader whose deliveries are
// older than MaxEventLag holds every write back.
func TestStore_RefusesWritesWhileTheReaderLags(t *testing.T) {
	t.Parallel()
	cfg := kvstore.DefaultConfig()
	cfg.MaxEventLag = time.Second
	st := reopenDelivered(t, cfg, time.Now().Add(-2*time.Second))
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = m.CreateSession(ctx, "u", "tok")
	require.ErrorIs(t, err, bus.ErrEventsBehind)
	ids, err := st.SessionIDsByLogin(ctx, "u")
	require.NoError(t, err)
	assert.Empty(t, ids, "a refused create writes nothing")
	head, err := st.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Delivered(ctx, bus.Delivery{Position: head, AsOf: time.Now()}))
	var s *bus.Session
	require.Eventually(t, func() bool {
		s, err = m.CreateSession(ctx, "u", "tok")
		return err == nil
	}, natstest.Patience, 10*time.Millisecond)

	// The reader falls behind again: writes wait, a logout does not.
	require.NoError(t, st.Delivered(ctx, bus.Delivery{Position: head, AsOf: time.Now().Add(-2 * time.Second)}))
	require.Eventually(t, func() bool {
		return errors.Is(m.SetAttribute(ctx, s.SessionID, "k", "v"), bus.ErrEventsBehind)
	}, natstest.Patience, 10*time.Millisecond)
	require.NoError(t, m.DeleteSession(ctx, s.SessionID))
	_, err = m.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}

// TestStore_TouchRacingDeleteLeavesNoIndex: a touch that loses to a delete
// must not bring the login or token index entry back.
func TestStore_TouchRacingDeleteLeavesNoIndex(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 30 {
		s, err := m.CreateSession(ctx, "racer", fmt.Sprintf("t%d", i))
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = m.RefreshSession(ctx, s.SessionID) }()
		go func() { defer wg.Done(); assert.NoError(t, m.DeleteSession(ctx, s.SessionID)) }()
		wg.Wait()
	}
	assert.Empty(t, liveKeys(t, st.Bucket()), "no index entry outlives its session")
}

// TestStore_MaxSessionsAcrossProcesses: the per-login cap holds when bus
// processes with their own connections and stores share one bucket.
func TestStore_MaxSessionsAcrossProcesses(t *testing.T) {
	t.Parallel()
	storetest.RunMaxSessionsRace(t, func(tb testing.TB, limit int, policy bus.EvictPolicy) []*bus.Manager {
		srv := natstest.RunServer(tb)
		var ms []*bus.Manager
		for i := range 2 {
			st, err := kvstore.New(context.Background(), natstest.JetStream(tb, srv), kvstore.DefaultConfig())
			require.NoError(tb, err)
			m, err := bus.New(st, fmt.Sprintf("bus-%d", i), time.Minute, bus.WithMaxSessions(limit, policy))
			require.NoError(tb, err)
			ms = append(ms, m)
		}
		return ms
	})
}

// TestStore_RefusedCreateWritesNoRecord: a create refused by the cap writes
// no session record, so the change stream has nothing to announce.
func TestStore_RefusedCreateWritesNoRecord(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m, err := bus.New(st, "svc", time.Minute, bus.WithMaxSessions(1, bus.RefuseNew))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = m.CreateSession(ctx, "u", "tok-0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			_, err := m.CreateSession(ctx, "u", fmt.Sprintf("tok-%d", i+1))
			assert.ErrorIs(t, err, bus.ErrSessionLimit)
		})
	}
	wg.Wait()
	stream, err := st.JetStream().Stream(ctx, kvstore.StreamName("sessions"))
	require.NoError(t, err)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("$KV.sessions.s.>"))
	require.NoError(t, err)
	assert.Len(t, info.State.Subjects, 1, "one session record ever written")
}

// TestStore_ChangesOutliveTheirSession: a session that ends while the
// feed's reader lags keeps its record, and the changes it carries, for
// twice MaxEventLag: a reader that catches up after the session expired
// still gets its create and update, then its expiry.
func TestStore_ChangesOutliveTheirSession(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for expiry")
	}
	t.Parallel()
	cfg := kvstore.DefaultConfig()
	cfg.MaxEventLag = 3 * time.Second
	st := reopenDelivered(t, cfg, time.Now())
	ctx := context.Background()
	start, err := st.Head(ctx)
	require.NoError(t, err)
	m, err := bus.New(st, "svc", time.Second)
	require.NoError(t, err)
	s, err := m.CreateSession(ctx, "u", "tok")
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "k", "v"))
	require.Eventually(t, func() bool { // ended, as a read sees it
		_, err := st.GetSession(ctx, s.SessionID)
		return errors.Is(err, bus.ErrSessionNotFound)
	}, natstest.Patience, 50*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // the login entry's expiry marker is written meanwhile

	cur, err := st.Follow(ctx, start)
	require.NoError(t, err)
	t.Cleanup(cur.Stop)
	var ops []bus.ChangeOp
	for !slices.Contains(ops, bus.OpExpired) {
		b, err := cur.Next(ctx)
		require.NoError(t, err)
		for _, c := range b.Changes {
			if c.SessionID == s.SessionID {
				ops = append(ops, c.Op)
			}
		}
	}
	assert.Equal(t, []bus.ChangeOp{bus.OpCreated, bus.OpUpdated, bus.OpExpired}, ops)
}
