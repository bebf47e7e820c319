package events_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
)

func listen(tb testing.TB, e *env, group string, h events.Handler, opts ...events.ListenOption) *events.Listener {
	tb.Helper()
	l, err := events.Listen(context.Background(), e.js, group, h, append([]events.ListenOption{events.WithLogger(quietLog)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, l.Close()) })
	return l
}

func createN(tb testing.TB, e *env, login string, n int) {
	tb.Helper()
	for i := range n {
		_, err := e.m.CreateSession(context.Background(), login, login+"-tok-"+string(rune('a'+i)))
		require.NoError(tb, err)
	}
}

func TestListen_GroupHandlesEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	seen := newIDSet()
	var calls [2]atomic.Int32
	for i := range 2 {
		listen(t, e, "workers", func(_ context.Context, ev events.Event) error {
			calls[i].Add(1)
			seen.add(ev)
			return nil
		})
	}
	createN(t, e, "henry", 20)
	require.Eventually(t, func() bool { return len(seen.events()) >= 20 }, natstest.Patience, 10*time.Millisecond)
	require.Never(t, func() bool { return len(seen.events()) > 20 }, 300*time.Millisecond, 20*time.Millisecond)
	evs := seen.events()
	require.Len(t, evs, 20)
	requireOrderedOnce(t, evs)
	t.Logf("instance calls: %d, %d", calls[0].Load(), calls[1].Load())
}

func TestListen_FailureIsRedelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	var mu sync.Mutex
	var order []string
	fails := 2
	done := make(chan struct{})
	listen(t, e, "flaky", func(_ context.Context, ev events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, ev.ID)
		if len(order) == 1 || fails > 0 && order[0] == ev.ID {
			if fails > 0 {
				fails--
				return errors.New("boom")
			}
		}
		if len(order) == 4 {
			close(done)
		}
		return nil
	}, events.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	createN(t, e, "ivy", 2)
	select {
	case <-done:
	case <-time.After(natstest.Patience):
		t.Fatal("events not redelivered")
	}
	mu.Lock()
	defer mu.Unlock()
	// The first event thrice (two failures), then the second: in order.
	assert.Equal(t, order[0], order[1])
	assert.Equal(t, order[0], order[2])
	assert.NotEqual(t, order[0], order[3])
}

func TestListen_MissedWhileDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	got := make(chan events.Event, 10)
	h := func(_ context.Context, ev events.Event) error { got <- ev; return nil }
	l, err := events.Listen(context.Background(), e.js, "billing", h, events.WithLogger(quietLog))
	require.NoError(t, err)
	createN(t, e, "jack", 1)
	first := next(t, got, natstest.Patience)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice")

	createN(t, e, "kate", 3)
	listen(t, e, "billing", h)
	missed := nextN(t, got, 3, natstest.Patience)
	for _, ev := range missed {
		assert.Equal(t, "kate", ev.LoginID)
		assert.NotEqual(t, first.ID, ev.ID)
	}
	requireOrderedOnce(t, append([]events.Event{first}, missed...))
	quiet(t, got, 200*time.Millisecond)
}

func TestListen_Filters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	ctx := context.Background()
	byType := collect(t, e.js, events.WithTypes(events.SessionDeleted))
	byLogin := collect(t, e.js, events.WithLogin("liam"))

	s, err := e.m.CreateSession(ctx, "liam", "t1")
	require.NoError(t, err)
	o, err := e.m.CreateSession(ctx, "mia", "t2")
	require.NoError(t, err)
	require.NoError(t, e.m.DeleteSession(ctx, o.SessionID))
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

	for _, ev := range nextN(t, byType, 2, natstest.Patience) {
		assert.Equal(t, events.SessionDeleted, ev.Type)
	}
	for _, ev := range nextN(t, byLogin, 2, natstest.Patience) {
		assert.Equal(t, "liam", ev.LoginID)
	}
	quiet(t, byType, 200*time.Millisecond)
	quiet(t, byLogin, 0)
}

func TestListen_Errors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	h := func(context.Context, events.Event) error { return nil }
	_, err := events.Listen(context.Background(), e.js, "g", h)
	require.ErrorIs(t, err, events.ErrNoStream)
	startRelay(t, e)
	_, err = events.Listen(context.Background(), e.js, "bad.group", h)
	require.ErrorIs(t, err, events.ErrInvalidConfig)
	_, err = events.Listen(context.Background(), e.js, "g", h, events.WithTypes("session.nope"))
	require.ErrorIs(t, err, events.ErrInvalidConfig)
	require.Panics(t, func() { _, _ = events.Listen(context.Background(), e.js, "g", nil) })
}

func TestTail_SinceAndTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	ctx := context.Background()
	since := time.Now()
	s, err := e.m.CreateSession(ctx, "noah", "t1")
	require.NoError(t, err)
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

	tctx, cancel := context.WithCancel(ctx)
	got := make(chan events.Event, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- events.Tail(tctx, e.js, events.TailOptions{Types: []events.Type{events.SessionDeleted}, Since: since},
			func(ev events.Event) { got <- ev })
	}()
	ev := next(t, got, natstest.Patience)
	assert.Equal(t, events.SessionDeleted, ev.Type)
	assert.Equal(t, s.SessionID, ev.SessionID)
	cancel()
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(natstest.Patience):
		t.Fatal("Tail did not return")
	}
}

func TestAuditor_Record(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	a, err := events.NewAuditor(ctx, e.js, events.DefaultAuditConfig())
	require.NoError(t, err)
	require.NoError(t, a.Record(ctx, events.AccessRecord{SessionID: "s1", LoginID: "olga", Reader: "svc-b", Creator: "svc-a"}))
	require.ErrorIs(t, a.Record(ctx, events.AccessRecord{SessionID: "a.b"}), events.ErrInvalidConfig)
	st, err := e.js.Stream(ctx, "SESSION_AUDIT")
	require.NoError(t, err)
	m, err := st.GetMsg(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, events.AccessedSubject("s1"), m.Subject)
	assert.Contains(t, string(m.Data), `"reader":"svc-b"`)
	// Audit records stay out of the change events' subject space.
	_, err = e.js.Stream(ctx, "SESSION_EVENTS")
	require.Error(t, err)
}

// TestAuditor_Bounded: the audit stream has a size bound, dropping the
// oldest records, and a stream made without one gets it.
func TestAuditor_Bounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SESSION_AUDIT", Subjects: []string{events.AuditSubjectAll}})
	require.NoError(t, err, "an audit stream as an older release made it: unbounded")
	cfg := events.DefaultAuditConfig()
	_, err = events.NewAuditor(ctx, e.js, cfg)
	require.NoError(t, err)
	st, err := e.js.Stream(ctx, "SESSION_AUDIT")
	require.NoError(t, err)
	info := st.CachedInfo().Config
	assert.Equal(t, cfg.MaxBytes, info.MaxBytes)
	assert.Equal(t, jetstream.DiscardOld, info.Discard)

	cfg.MaxBytes = 0
	_, err = events.NewAuditor(ctx, e.js, cfg)
	require.ErrorIs(t, err, events.ErrInvalidConfig, "an unbounded audit stream is refused")
}

// A group whose durable consumer is deleted under it makes it again and
// goes on: the events of changes made after the deletion (some perhaps
// before the consumer exists again) all arrive.
func TestListen_RecreatesDeletedConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	got := make(chan events.Event, 10)
	h := func(_ context.Context, ev events.Event) error { got <- ev; return nil }
	l := listen(t, e, "billing", h)
	createN(t, e, "jack", 1)
	next(t, got, natstest.Patience)

	ctx := natstest.Context(t)
	require.NoError(t, e.js.DeleteConsumer(ctx, events.DefaultStreamConfig().Name, "billing"))
	createN(t, e, "kate", 2)
	// Delivery is at least once: jack's event may come again when its
	// ack had not reached the server before the deletion.
	kate := map[string]bool{}
	deadline := time.After(natstest.Patience)
	for len(kate) < 2 {
		select {
		case ev := <-got:
			if ev.LoginID == "kate" {
				kate[ev.SessionID] = true
			} else {
				assert.Equal(t, "jack", ev.LoginID)
			}
		case <-deadline:
			t.Fatalf("kate's events after the deletion: %d of 2", len(kate))
		}
	}
	select {
	case <-l.Done():
		t.Fatalf("the listener stopped: %v", l.Err())
	default:
	}
	_, err := e.js.Consumer(ctx, events.DefaultStreamConfig().Name, "billing")
	require.NoError(t, err, "the group's consumer exists again")
}
