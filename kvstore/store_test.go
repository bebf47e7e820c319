package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
	"github.com/session-bus/session-bus/events"
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
	st := newStore(t)
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

// TestStore_ChangeHeaders: every write names its change and acting service
// on the KV message, so events can be derived from the bucket's stream.
func TestStore_ChangeHeaders(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	ctx := bus.ContextWithService(context.Background(), "order-api")
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	js := st.JetStream()
	ks, err := js.Stream(context.Background(), kvstore.StreamName("sessions"))
	require.NoError(t, err)
	last := func() *jetstream.RawStreamMsg {
		msg, err := ks.GetLastMsgForSubject(context.Background(), "$KV.sessions.s."+s.SessionID)
		require.NoError(t, err)
		return msg
	}
	msg := last()
	assert.Equal(t, "created", msg.Header.Get(events.HeaderOp))
	assert.Equal(t, "order-api", msg.Header.Get(events.HeaderService))
	assert.NotContains(t, string(msg.Data), `"t"`, "no token in the record")

	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "role", "admin"))
	msg = last()
	assert.Equal(t, "updated", msg.Header.Get(events.HeaderOp))
	assert.Equal(t, `["role"]`, msg.Header.Get(events.HeaderKeys))

	require.NoError(t, m.DeleteSession(ctx, s.SessionID))
	msg = last()
	assert.Equal(t, "deleted", msg.Header.Get(events.HeaderOp))
	assert.Equal(t, "logout", msg.Header.Get(events.HeaderReason))
	assert.NotEmpty(t, msg.Header.Get(events.HeaderLogin))
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
