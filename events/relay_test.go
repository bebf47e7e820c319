package events_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
)

func TestRelay_EveryOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e.js)
	ch := collect(t, e.js)
	ctx := context.Background()

	s, err := e.m.CreateSession(ctx, "alice@example.com", "tok-SECRET-1")
	require.NoError(t, err)
	require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "role", "VALUE-admin"))
	_, err = e.m.RefreshSession(ctx, s.SessionID)
	require.NoError(t, err)
	require.NoError(t, e.m.RemoveAttribute(ctx, s.SessionID, "role"))
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

	tests := []struct {
		wantType   events.Type
		wantReason string
		wantKeys   []string
	}{
		{wantType: events.SessionCreated},
		{wantType: events.SessionUpdated, wantKeys: []string{"role"}},
		{wantType: events.SessionRefreshed},
		{wantType: events.SessionUpdated, wantKeys: []string{"role"}},
		{wantType: events.SessionDeleted, wantReason: bus.ReasonLogout},
	}
	var prev uint64
	for _, tt := range tests {
		ev := next(t, ch, 5*time.Second)
		assert.Equal(t, tt.wantType, ev.Type)
		assert.Equal(t, s.SessionID, ev.SessionID)
		assert.Equal(t, "alice@example.com", ev.LoginID)
		assert.Equal(t, "svc-a", ev.ServiceID)
		assert.Equal(t, tt.wantReason, ev.Reason)
		assert.Equal(t, tt.wantKeys, ev.Keys)
		assert.Equal(t, events.EventID("sessions", ev.Revision), ev.ID)
		assert.Greater(t, ev.Revision, prev)
		assert.WithinDuration(t, time.Now(), ev.Time, 10*time.Second)
		prev = ev.Revision
	}
	quiet(t, ch, 300*time.Millisecond)

	// The raw payloads on the stream: right subjects, no token, no value.
	st, err := e.js.Stream(ctx, "SESSION_EVENTS")
	require.NoError(t, err)
	for seq := uint64(1); seq <= 5; seq++ {
		m, err := st.GetMsg(ctx, seq)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(m.Subject, "."+s.SessionID), m.Subject)
		assert.NotContains(t, string(m.Data), "SECRET")
		assert.NotContains(t, string(m.Data), "VALUE")
		assert.NotContains(t, string(m.Data), "fingerprint")
		ev, err := events.Decode(m.Data)
		require.NoError(t, err)
		assert.Equal(t, events.SessionSubject(ev), m.Subject)
		assert.Equal(t, ev.ID, m.Header.Get(jetstream.MsgIDHeader))
	}
}

func TestRelay_AbortedCreateIsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e.js)
	ch := collect(t, e.js)
	ctx := context.Background()
	s, err := e.m.CreateSession(ctx, "alice", "tok")
	require.NoError(t, err)
	_, err = e.m.CreateSession(ctx, "bob", "tok")
	require.ErrorIs(t, err, bus.ErrTokenInUse)
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

	// Whatever was announced about the withdrawn session ends in a delete.
	open := map[string]bool{}
	for {
		ev := next(t, ch, 5*time.Second)
		open[ev.SessionID] = ev.Type != events.SessionDeleted
		if ev.SessionID == s.SessionID && ev.Type == events.SessionDeleted {
			break
		}
	}
	for id, isOpen := range open {
		assert.False(t, isOpen, "session %s announced but never closed", id)
	}
}

func TestRelay_Expired(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for expiry")
	}
	t.Parallel()
	e := newEnv(t, time.Second)
	startRelay(t, e.js)
	ch := collect(t, e.js, events.WithTypes(events.SessionExpired, events.SessionDeleted))
	ctx := context.Background()

	live := map[string]*bus.Session{}
	for i := range 3 {
		s, err := e.m.CreateSession(ctx, "carol", "tok-"+string(rune('a'+i)))
		require.NoError(t, err)
		live[s.SessionID] = s
	}
	gone, err := e.m.CreateSession(ctx, "carol", "tok-gone")
	require.NoError(t, err)
	require.NoError(t, e.m.DeleteSession(ctx, gone.SessionID))
	del := next(t, ch, 5*time.Second)
	require.Equal(t, events.SessionDeleted, del.Type)

	for range live {
		ev := next(t, ch, 5*time.Second)
		require.Equal(t, events.SessionExpired, ev.Type)
		s, ok := live[ev.SessionID]
		require.True(t, ok, "expired event for %s", ev.SessionID)
		delete(live, ev.SessionID)
		assert.Equal(t, "carol", ev.LoginID)
		// TTLs are whole seconds rounded up: the key ends within 1 s after
		// ExpiresAt, and the event must follow within 1 s of that.
		late := time.Since(s.ExpiresAt)
		assert.Less(t, late, 2*time.Second, "expired event %v after ExpiresAt", late)
		t.Logf("expired event %v after ExpiresAt", late.Round(time.Millisecond))
	}
	// The deleted session's purge markers expire too (1 s marker TTL):
	// that must not announce anything, nor must anything be announced twice.
	quiet(t, ch, 2500*time.Millisecond)
}

func TestRelay_RestartLosesAndDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for expiry")
	}
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	ctx := context.Background()
	r1, err := events.NewRelay(e.js, testRelayConfig())
	require.NoError(t, err)
	require.NoError(t, r1.Start(ctx))
	ch := collect(t, e.js)

	a, err := e.m.CreateSession(ctx, "dave", "tok-a")
	require.NoError(t, err)
	b, err := e.m.CreateSession(ctx, "dave", "tok-b")
	require.NoError(t, err)
	before := nextN(t, ch, 2, 5*time.Second)
	require.NoError(t, r1.Close())
	require.NoError(t, r1.Close(), "Close twice")

	// While no relay runs: one change per key (the bucket keeps one
	// revision per key, see doc.go), and b expires.
	c, err := e.m.CreateSession(ctx, "dave", "tok-c")
	require.NoError(t, err)
	require.NoError(t, e.m.DeleteSession(ctx, a.SessionID))
	require.Eventually(t, func() bool {
		_, err := e.m.GetSession(ctx, b.SessionID)
		return err != nil && time.Now().After(b.ExpiresAt.Add(time.Second))
	}, 5*time.Second, 50*time.Millisecond)
	quiet(t, ch, 100*time.Millisecond)

	startRelay(t, e.js)
	after := nextN(t, ch, 3, 5*time.Second)
	got := map[string]events.Type{}
	for _, ev := range after {
		got[ev.SessionID] = ev.Type
	}
	assert.Equal(t, map[string]events.Type{
		c.SessionID: events.SessionCreated,
		a.SessionID: events.SessionDeleted,
		b.SessionID: events.SessionExpired,
	}, got)
	requireOrderedOnce(t, append(before, after...))
	quiet(t, ch, 300*time.Millisecond)
}

func TestRelay_TwoRelaysOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	r1 := startRelay(t, e.js)
	require.Eventually(t, r1.Active, 5*time.Second, 10*time.Millisecond)
	r2 := startRelay(t, e.js)
	ch := collect(t, e.js)

	var ids []string
	for i := range 5 {
		s, err := e.m.CreateSession(ctx, "erin", "tok-"+string(rune('a'+i)))
		require.NoError(t, err)
		ids = append(ids, s.SessionID)
	}
	ops := func(round int) {
		for _, id := range ids {
			require.NoError(t, e.m.SetAttribute(ctx, id, "k", string(rune('a'+round))))
		}
	}
	ops(0)
	assert.True(t, r1.Active() != r2.Active(), "exactly one relay is active")
	first := nextN(t, ch, 10, 5*time.Second)

	// Fail over mid-stream: the active relay goes, the standby resumes.
	require.NoError(t, r1.Close())
	ops(1)
	ops(2)
	for _, id := range ids {
		require.NoError(t, e.m.DeleteSession(ctx, id))
	}
	rest := nextN(t, ch, 15, 10*time.Second)
	assert.True(t, r2.Active())
	all := append(first, rest...)
	requireOrderedOnce(t, all)
	for _, id := range ids {
		var types []events.Type
		for _, ev := range all {
			if ev.SessionID == id {
				types = append(types, ev.Type)
			}
		}
		assert.Equal(t, []events.Type{events.SessionCreated, events.SessionUpdated, events.SessionUpdated,
			events.SessionUpdated, events.SessionDeleted}, types)
	}
	quiet(t, ch, 300*time.Millisecond)
}

func TestRelay_OverlappingRelaysPublishOnce(t *testing.T) {
	t.Parallel()
	// Two active relays at once (a paused leader that has not noticed it
	// lost its lease): de-duplication by event id keeps each event once.
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	cfg1, cfg2 := testRelayConfig(), testRelayConfig()
	cfg1.LeaseBucket, cfg2.LeaseBucket = "lease-1", "lease-2"
	for _, cfg := range []events.RelayConfig{cfg1, cfg2} {
		r, err := events.NewRelay(e.js, cfg)
		require.NoError(t, err)
		require.NoError(t, r.Start(ctx))
		t.Cleanup(func() { _ = r.Close() })
		require.Eventually(t, r.Active, 5*time.Second, 10*time.Millisecond)
	}
	ch := collect(t, e.js)
	s, err := e.m.CreateSession(ctx, "frank", "tok")
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "n", string(rune('a'+i))))
	}
	evs := nextN(t, ch, 21, 5*time.Second)
	requireOrderedOnce(t, evs)
	quiet(t, ch, 300*time.Millisecond)
}

func TestRelay_DeleteAllSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e.js)
	ctx := context.Background()
	got := make(chan events.Event, 100)
	l, err := events.Listen(ctx, e.js, "logout-all", func(_ context.Context, ev events.Event) error {
		got <- ev
		return nil
	}, events.WithTypes(events.SessionDeleted))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	var ids []string
	for i := range 10 {
		s, err := e.m.CreateSession(ctx, "grace", "tok-"+string(rune('a'+i)))
		require.NoError(t, err)
		ids = append(ids, s.SessionID)
	}
	n, err := e.m.DeleteAllSessions(ctx, "grace")
	require.NoError(t, err)
	require.Equal(t, 10, n)
	evs := nextN(t, got, 10, 5*time.Second)
	var gotIDs []string
	for _, ev := range evs {
		assert.Equal(t, events.SessionDeleted, ev.Type)
		assert.Equal(t, bus.ReasonLogoutAll, ev.Reason)
		assert.Equal(t, "grace", ev.LoginID)
		gotIDs = append(gotIDs, ev.SessionID)
	}
	slices.Sort(ids)
	slices.Sort(gotIDs)
	assert.Equal(t, ids, gotIDs)
	quiet(t, got, 300*time.Millisecond)
}
