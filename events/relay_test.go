package events_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

func TestRelay_EveryOp(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		startRelay(t, e)
		ch := collect(t, e.js)
		ctx := context.Background()

		// One op at a time, each awaited: see TestRelay_BurstOnOneSession for
		// back-to-back changes.
		var s *bus.Session
		ops := []struct {
			name       string
			do         func() error
			wantType   events.Type
			wantReason string
			wantKeys   []string
		}{
			{name: "create", wantType: events.SessionCreated, do: func() (err error) {
				s, err = e.m.CreateSession(ctx, "alice@example.com", "tok-SECRET-1")
				return err
			}},
			{name: "set", wantType: events.SessionUpdated, wantKeys: []string{"role"},
				do: func() error { return e.m.SetAttribute(ctx, s.SessionID, "role", "VALUE-admin") }},
			{name: "refresh", wantType: events.SessionRefreshed,
				do: func() error { _, err := e.m.RefreshSession(ctx, s.SessionID); return err }},
			{name: "remove", wantType: events.SessionUpdated, wantKeys: []string{"role"},
				do: func() error { return e.m.RemoveAttribute(ctx, s.SessionID, "role") }},
			{name: "delete", wantType: events.SessionDeleted, wantReason: bus.ReasonLogout,
				do: func() error { return e.m.DeleteSession(ctx, s.SessionID) }},
		}
		var prev uint64
		for _, tt := range ops {
			require.NoError(t, tt.do(), tt.name)
			ev := next(t, ch, natstest.Patience)
			assert.Equal(t, tt.wantType, ev.Type, tt.name)
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
	})
}

// TestRelay_CreateWithAttributes: a create that sets the first attributes
// is one session.created naming their keys, and no session.updated.
func TestRelay_CreateWithAttributes(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		startRelay(t, e)
		ch := collect(t, e.js)
		s, err := e.m.CreateSession(context.Background(), "bob", "tok-1",
			bus.WithAttributes(map[string]string{"role": "VALUE-admin", "device": "VALUE-web"}))
		require.NoError(t, err)
		ev := next(t, ch, natstest.Patience)
		assert.Equal(t, events.SessionCreated, ev.Type)
		assert.Equal(t, s.SessionID, ev.SessionID)
		assert.Equal(t, []string{"device", "role"}, ev.Keys)
		quiet(t, ch, 300*time.Millisecond)
	})
}

// TestRelay_BurstOnOneSession: back-to-back changes of one session replace
// each other's revision in the bucket before the relay reads them; the
// change log on each revision still gets every change announced, in order.
func TestRelay_BurstOnOneSession(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		startRelay(t, e)
		ch := collect(t, e.js)
		ctx := context.Background()
		s, err := e.m.CreateSession(ctx, "zoe", "tok")
		require.NoError(t, err)
		// Wait until the relay reads live: a relay that starts reading after
		// the whole burst finds only the last write and its change log, which
		// holds the 8 changes before it (see TestRelay_DownDuringBurst).
		created := next(t, ch, natstest.Patience)
		for i := range 10 {
			require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "n", string(rune('a'+i))))
		}
		require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))
		requireOrderedOnce(t, append([]events.Event{created}, nextN(t, ch, 11, natstest.Patience)...))
	})
}

// TestRelay_RefusedCreateIsSilent: a create the store refused (token in
// use) wrote no session record, so nothing announces it.
func TestRelay_RefusedCreateIsSilent(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		startRelay(t, e)
		ch := collect(t, e.js)
		ctx := context.Background()
		s, err := e.m.CreateSession(ctx, "alice", "tok")
		require.NoError(t, err)
		_, err = e.m.CreateSession(ctx, "bob", "tok")
		require.ErrorIs(t, err, bus.ErrTokenInUse)
		require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

		got := nextN(t, ch, 2, natstest.Patience)
		assert.Equal(t, events.SessionCreated, got[0].Type)
		assert.Equal(t, events.SessionDeleted, got[1].Type)
		for _, ev := range got {
			assert.Equal(t, s.SessionID, ev.SessionID, "only alice's session is announced")
		}
	})
}

// TestRelay_DownDuringBurst: while no relay runs, a session is created,
// changed seven times and deleted (nine changes, one surviving message: the
// purge, whose log holds the eight before it). A relay that starts later
// announces all nine, once each, in order.
func TestRelay_DownDuringBurst(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		ctx := context.Background()
		r1 := startRelay(t, e) // creates the events stream, so a later start resumes from it
		require.NoError(t, r1.Close())
		ch := collect(t, e.js)

		s, err := e.m.CreateSession(ctx, "yuri", "tok")
		require.NoError(t, err)
		for i := range 7 {
			require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, fmt.Sprintf("k%d", i), "v"))
		}
		require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))

		startRelay(t, e)
		got := nextN(t, ch, 9, natstest.Patience)
		requireOrderedOnce(t, got)
		assert.Equal(t, events.SessionCreated, got[0].Type)
		for i, ev := range got[1:8] {
			assert.Equal(t, events.SessionUpdated, ev.Type)
			assert.Equal(t, []string{fmt.Sprintf("k%d", i)}, ev.Keys)
		}
		assert.Equal(t, events.SessionDeleted, got[8].Type)
		assert.Equal(t, bus.ReasonLogout, got[8].Reason)
		quiet(t, ch, 200*time.Millisecond)
	})
}

func TestRelay_Expired(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for expiry")
	}
	for name, newEnv := range map[string]func(testing.TB) *env{
		"kvstore": func(tb testing.TB) *env { return newEnvMarkerTTL(tb, time.Second, time.Second) },
		"memory":  func(tb testing.TB) *env { return newMemoryEnv(tb, time.Second) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			startRelay(t, e)
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
			del := next(t, ch, natstest.Patience)
			require.Equal(t, events.SessionDeleted, del.Type)

			for len(live) > 0 {
				ev := next(t, ch, natstest.Patience)
				require.Equal(t, events.SessionExpired, ev.Type)
				s, ok := live[ev.SessionID]
				require.True(t, ok, "expired event for %s", ev.SessionID)
				delete(live, ev.SessionID)
				assert.Equal(t, "carol", ev.LoginID)
				// TTLs are whole seconds rounded up: the key ends within 1 s after
				// ExpiresAt, and the event follows (on a quiet machine within
				// 300 ms; a figure, not an assertion: a loaded machine is slower).
				late := time.Since(s.ExpiresAt)
				assert.Positive(t, late, "an expired event never comes before ExpiresAt")
				t.Logf("expired event %v after ExpiresAt", late.Round(time.Millisecond))
			}
			// The deleted session's purge markers expire too (1 s marker TTL):
			// that must not announce anything, nor must anything be announced twice.
			quiet(t, ch, 2500*time.Millisecond)
		})
	}
}

func TestRelay_RestartLosesAndDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for expiry")
	}
	t.Parallel()
	e := newEnv(t, 2*time.Second)
	ctx := context.Background()
	r1, err := events.NewRelay(e.feed, e.js, testRelayConfig())
	require.NoError(t, err)
	require.NoError(t, r1.Start(ctx))
	ch := collect(t, e.js)

	a, err := e.m.CreateSession(ctx, "dave", "tok-a")
	require.NoError(t, err)
	b, err := e.m.CreateSession(ctx, "dave", "tok-b")
	require.NoError(t, err)
	before := nextN(t, ch, 2, natstest.Patience)
	require.NoError(t, r1.Close())
	require.NoError(t, r1.Close(), "Close twice")

	// While no relay runs: one change per key (the bucket keeps one
	// revision per key, see doc.go): a is deleted, b expires, c is created.
	require.NoError(t, e.m.DeleteSession(ctx, a.SessionID))
	require.Eventually(t, func() bool { // read the store: a bus read would extend b
		_, err := e.feed.(bus.Store).GetSession(ctx, b.SessionID)
		return errors.Is(err, bus.ErrSessionNotFound)
	}, natstest.Patience, 20*time.Millisecond)
	c, err := e.m.CreateSession(ctx, "dave", "tok-c")
	require.NoError(t, err)
	quiet(t, ch, 100*time.Millisecond)

	startRelay(t, e)
	after := nextN(t, ch, 3, natstest.Patience)
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
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		ctx := context.Background()
		r1 := startRelay(t, e)
		require.Eventually(t, r1.Active, natstest.Patience, 10*time.Millisecond)
		r2 := startRelay(t, e)
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
		first := nextN(t, ch, 10, natstest.Patience)

		// Fail over: the active relay goes, the standby resumes where it
		// stopped. (Changes made during the hand-over are announced too, but
		// consecutive changes of one key may coalesce then; see doc.go.)
		require.NoError(t, r1.Close())
		require.Eventually(t, r2.Active, natstest.Patience, 10*time.Millisecond)
		ops(1)
		ops(2)
		for _, id := range ids {
			require.NoError(t, e.m.DeleteSession(ctx, id))
		}
		rest := nextN(t, ch, 15, natstest.Patience)
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
	})
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
		r, err := events.NewRelay(e.feed, e.js, cfg)
		require.NoError(t, err)
		require.NoError(t, r.Start(ctx))
		t.Cleanup(func() { _ = r.Close() })
		require.Eventually(t, r.Active, natstest.Patience, 10*time.Millisecond)
	}
	ch := collect(t, e.js)
	s, err := e.m.CreateSession(ctx, "frank", "tok")
	require.NoError(t, err)
	evs := []events.Event{next(t, ch, natstest.Patience)}
	for i := range 20 { // awaited one by one: see TestRelay_BurstOnOneSession
		require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "n", string(rune('a'+i))))
		evs = append(evs, next(t, ch, natstest.Patience))
	}
	requireOrderedOnce(t, evs)
	quiet(t, ch, 300*time.Millisecond)
}

func TestRelay_DeleteAllSessions(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		startRelay(t, e)
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
		evs := nextN(t, got, 10, natstest.Patience)
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
	})
}

// TestRelay_CoreSubscribersSeeEventsLive: a plain NATS subscriber on
// session.> (no JetStream) gets each event as it is announced.
func TestRelay_CoreSubscribersSeeEventsLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	startRelay(t, e)
	sub, err := e.js.Conn().SubscribeSync(events.SubjectAll)
	require.NoError(t, err)
	require.NoError(t, e.js.Conn().Flush())
	ctx := context.Background()
	s, err := e.m.CreateSession(ctx, "core", "tok")
	require.NoError(t, err)
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))
	for _, want := range []events.Type{events.SessionCreated, events.SessionDeleted} {
		msg, err := sub.NextMsg(natstest.Patience)
		require.NoError(t, err)
		assert.Equal(t, events.Subject(want, s.SessionID), msg.Subject)
		ev, err := events.Decode(msg.Data)
		require.NoError(t, err)
		assert.Equal(t, want, ev.Type)
	}
}

// TestRelay_ForeignMessageMovesNothing: a message someone else puts at the
// end of the events stream, even one dressed as the relay's (its message
// id and source header), neither moves where a relay resumes nor breaks
// the order of what it publishes next.
func TestRelay_ForeignMessageMovesNothing(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		ctx := context.Background()
		r1 := startRelay(t, e)
		ch := collect(t, e.js)
		a, err := e.m.CreateSession(ctx, "ivy", "tok-a")
		require.NoError(t, err)
		require.Equal(t, a.SessionID, next(t, ch, natstest.Patience).SessionID)
		require.NoError(t, r1.Close())

		forged := nats.NewMsg(events.Subject(events.SessionCreated, a.SessionID))
		forged.Data = []byte(`{"event_id":"kv-sessions-999999","type":"session.created","session_id":"` + a.SessionID + `","revision":999999}`)
		forged.Header.Set(events.HeaderSourceSeq, "999999")
		_, err = e.js.PublishMsg(ctx, forged, jetstream.WithMsgID("kv-sessions-999999"))
		require.NoError(t, err)
		require.Equal(t, uint64(999999), next(t, ch, natstest.Patience).Revision, "the forged event is on the stream")

		b, err := e.m.CreateSession(ctx, "ivy", "tok-b")
		require.NoError(t, err)
		require.NoError(t, e.m.SetAttribute(ctx, a.SessionID, "k", "v"))
		startRelay(t, e)
		got := nextN(t, ch, 2, natstest.Patience)
		assert.Equal(t, b.SessionID, got[0].SessionID)
		assert.Equal(t, events.SessionCreated, got[0].Type)
		assert.Equal(t, a.SessionID, got[1].SessionID)
		assert.Equal(t, events.SessionUpdated, got[1].Type)
		quiet(t, ch, 300*time.Millisecond)
	})
}

// TestRelay_RepeatsAreLookedUp: after a restart a session's change log may
// carry a change at or before where the relay resumes, which an earlier
// relay may have announced. The relay looks it up on the events stream
// instead of relying on the duplicate window (1 s here, long passed).
func TestRelay_RepeatsAreLookedUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	st := e.feed.(*kvstore.Store)
	ctx := context.Background()
	cfg := testRelayConfig()
	cfg.Stream.Duplicates = time.Second
	start := func() *events.Relay { return startRelayWith(t, e.feed, e.js, cfg) }
	r1 := start()
	ch := collect(t, e.js)
	s, err := e.m.CreateSession(ctx, "jay", "tok")
	require.NoError(t, err)
	require.Equal(t, s.Revision, next(t, ch, natstest.Patience).Revision)
	require.NoError(t, r1.Close())

	// A writer that has not seen the create delivered carries it in the
	// update's log; the relay resumes right after the create.
	require.NoError(t, st.Delivered(ctx, bus.Delivery{Position: s.Revision - 1, AsOf: time.Now()}))
	st2, err := kvstore.New(ctx, e.js, kvstore.DefaultConfig())
	require.NoError(t, err)
	t.Cleanup(st2.Close)
	m2, err := bus.New(st2, "svc-b", time.Minute)
	require.NoError(t, err)
	require.NoError(t, m2.SetAttribute(ctx, s.SessionID, "k", "v"))
	require.NoError(t, st.Delivered(ctx, bus.Delivery{Position: s.Revision, AsOf: time.Now()}))
	time.Sleep(1500 * time.Millisecond) // past the duplicate window: only the lookup can drop the create now

	start()
	ev := next(t, ch, natstest.Patience)
	assert.Equal(t, events.SessionUpdated, ev.Type)
	assert.Equal(t, "svc-b", ev.ServiceID)
	quiet(t, ch, 500*time.Millisecond)
}

// failingDelivery is a store's feed whose LastDelivered fails once.
type failingDelivery struct {
	bus.ChangeFeed
	failed bool
}

func (f *failingDelivery) LastDelivered(ctx context.Context) (bus.Delivery, bool, error) {
	if !f.failed {
		f.failed = true
		return bus.Delivery{}, false, errors.New("read failed")
	}
	return f.ChangeFeed.LastDelivered(ctx)
}

// TestRelay_StartFailsRatherThanSkip: a relay that cannot read where the
// last one stopped fails to start; it never records a start of its own
// over it (which would skip the changes in between).
func TestRelay_StartFailsRatherThanSkip(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, e *env) {
		ctx := context.Background()
		r1 := startRelay(t, e)
		ch := collect(t, e.js)
		_, err := e.m.CreateSession(ctx, "kim", "tok-a")
		require.NoError(t, err)
		next(t, ch, natstest.Patience)
		require.NoError(t, r1.Close())
		before, ok, err := e.feed.LastDelivered(ctx)
		require.NoError(t, err)
		require.True(t, ok)

		b, err := e.m.CreateSession(ctx, "kim", "tok-b")
		require.NoError(t, err)
		r2, err := events.NewRelay(&failingDelivery{ChangeFeed: e.feed}, e.js, testRelayConfig())
		require.NoError(t, err)
		require.Error(t, r2.Start(ctx))
		after, _, err := e.feed.LastDelivered(ctx)
		require.NoError(t, err)
		assert.Equal(t, before.Position, after.Position, "the delivery did not move")

		startRelay(t, e)
		assert.Equal(t, b.SessionID, next(t, ch, natstest.Patience).SessionID)
	})
}

// TestRelay_OverlappingRelaysBurst: two relays active at once (each with a
// lease bucket of its own) under a burst that keeps both pipelines full:
// every change is announced once, in order per session.
func TestRelay_OverlappingRelaysBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	cfg1, cfg2 := testRelayConfig(), testRelayConfig()
	cfg1.LeaseBucket, cfg2.LeaseBucket = "lease-1", "lease-2"
	for _, cfg := range []events.RelayConfig{cfg1, cfg2} {
		r, err := events.NewRelay(e.feed, e.js, cfg)
		require.NoError(t, err)
		require.NoError(t, r.Start(ctx))
		t.Cleanup(func() { _ = r.Close() })
		require.Eventually(t, r.Active, natstest.Patience, 10*time.Millisecond)
	}
	ch := collect(t, e.js)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				s, err := e.m.CreateSession(ctx, fmt.Sprint("w", w), fmt.Sprint("w", w, "-", i))
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "k", "v"))
			}
		})
	}
	wg.Wait()
	got := nextN(t, ch, 400, natstest.Patience)
	requireOrderedOnce(t, got)
	quiet(t, ch, 300*time.Millisecond)
}

// TestRelay_RestartSkipsWhatWasPublished: a relay killed after publishing
// but before recording the delivery leaves events its successor reads
// again; the successor skips those the events stream holds, even long
// after the duplicate window (1 s here).
func TestRelay_RestartSkipsWhatWasPublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	st := e.feed.(*kvstore.Store)
	ctx := context.Background()
	cfg := testRelayConfig()
	cfg.Stream.Duplicates = time.Second
	start := func() *events.Relay { return startRelayWith(t, e.feed, e.js, cfg) }
	r1 := start()
	ch := collect(t, e.js)
	before, ok, err := st.LastDelivered(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	for i := range 5 {
		_, err := e.m.CreateSession(ctx, "lee", fmt.Sprint("tok-", i))
		require.NoError(t, err)
	}
	nextN(t, ch, 5, natstest.Patience)
	require.NoError(t, r1.Close())
	// As if r1 had died before recording any of it.
	require.NoError(t, st.Delivered(ctx, before))
	time.Sleep(1500 * time.Millisecond) // past the duplicate window

	start()
	quiet(t, ch, 500*time.Millisecond)
	s, err := e.m.CreateSession(ctx, "lee", "tok-new")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, next(t, ch, natstest.Patience).SessionID)
	quiet(t, ch, 300*time.Millisecond)
}

// joinedFeed is a store's feed whose batches are joined until they hold at
// least min changes (or a quiet spell comes): as a kvstore batch of
// records with long change logs can be.
type joinedFeed struct {
	bus.ChangeFeed
	min int
}

func (f joinedFeed) Follow(ctx context.Context, after uint64) (bus.ChangeCursor, error) {
	c, err := f.ChangeFeed.Follow(ctx, after)
	return joinedCursor{ChangeCursor: c, min: f.min}, err
}

type joinedCursor struct {
	bus.ChangeCursor
	min int
}

func (c joinedCursor) Next(ctx context.Context) (bus.ChangeBatch, error) {
	var out bus.ChangeBatch
	for len(out.Changes) < c.min {
		b, err := c.ChangeCursor.Next(ctx)
		if err != nil {
			return out, err
		}
		out.Changes, out.Through, out.AsOf = append(out.Changes, b.Changes...), b.Through, b.AsOf
		if len(b.Changes) == 0 {
			break
		}
	}
	return out, nil
}

// TestRelay_LongChangeLogs: while no relay runs, 20 sessions change 60
// times each; a relay that starts gets their 1,220 changes in one batch
// (more than MaxChangeBatch, as change logs can make it), hands them over
// in parts, and announces all once, in order.
func TestRelay_LongChangeLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Minute)
	ctx := context.Background()
	r1 := startRelay(t, e) // records where relaying starts: a reader is known
	require.NoError(t, r1.Close())
	ch := collect(t, e.js)
	for i := range 20 {
		s, err := e.m.CreateSession(ctx, "max", fmt.Sprint("tok-", i))
		require.NoError(t, err)
		for j := range 60 {
			require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "k", fmt.Sprint(j)))
		}
	}
	startRelayWith(t, joinedFeed{ChangeFeed: e.feed, min: 20 * 61}, e.js, testRelayConfig())
	got := nextN(t, ch, 20*61, natstest.Patience)
	requireOrderedOnce(t, got)
	quiet(t, ch, 300*time.Millisecond)
}
