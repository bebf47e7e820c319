package events_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

var quietLog = slog.New(slog.DiscardHandler)

type env struct {
	js   jetstream.JetStream
	m    *bus.Manager
	feed bus.ChangeFeed // the store's
}

// storeKinds are the stores whose change feeds the relay is tested on.
var storeKinds = []struct {
	name   string
	newEnv func(tb testing.TB, idle time.Duration) *env
}{
	{"kvstore", newEnv},
	{"memory", newMemoryEnv},
}

// eachStore runs f, in parallel, on an env of each store kind.
func eachStore(t *testing.T, idle time.Duration, f func(t *testing.T, e *env)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			f(t, k.newEnv(t, idle))
		})
	}
}

// newMemoryEnv is newEnv on a bus.MemoryStore; the server holds only the
// events stream and the relay's lease.
func newMemoryEnv(tb testing.TB, idle time.Duration) *env {
	tb.Helper()
	js := natstest.JetStream(tb, natstest.RunServer(tb))
	st := bus.NewMemoryStore()
	m, err := bus.New(st, "svc-a", idle)
	require.NoError(tb, err)
	return &env{js: js, m: m, feed: st}
}

// newEnv starts a server, a KV store and a manager with the given idle timeout.
func newEnv(tb testing.TB, idle time.Duration) *env {
	tb.Helper()
	return newEnvMarkerTTL(tb, idle, kvstore.DefaultConfig().MarkerTTL)
}

// newEnvMarkerTTL is newEnv with the store's marker TTL.
func newEnvMarkerTTL(tb testing.TB, idle, markerTTL time.Duration) *env {
	tb.Helper()
	s := natstest.RunServer(tb)
	js := natstest.JetStream(tb, s)
	cfg := kvstore.DefaultConfig()
	cfg.MarkerTTL = markerTTL
	st, err := kvstore.New(context.Background(), js, cfg)
	require.NoError(tb, err)
	tb.Cleanup(st.Close)
	m, err := bus.New(st, "svc-a", idle)
	require.NoError(tb, err)
	return &env{js: js, m: m, feed: st}
}

func testRelayConfig() events.RelayConfig {
	cfg := events.DefaultRelayConfig()
	cfg.LeaseTTL = time.Second
	cfg.Logger = quietLog
	return cfg
}

// startRelay starts a relay closed when the test ends.
func startRelay(tb testing.TB, e *env) *events.Relay {
	tb.Helper()
	return startRelayWith(tb, e.feed, e.js, testRelayConfig())
}

// startRelayWith starts a relay of feed with cfg, closed when the test ends.
func startRelayWith(tb testing.TB, feed bus.ChangeFeed, js jetstream.JetStream, cfg events.RelayConfig) *events.Relay {
	tb.Helper()
	r, err := events.NewRelay(feed, js, cfg)
	require.NoError(tb, err)
	require.NoError(tb, r.Start(context.Background()))
	tb.Cleanup(func() { require.NoError(tb, r.Close()) })
	return r
}

// collect broadcasts every stored and future event to a channel.
func collect(tb testing.TB, js jetstream.JetStream, opts ...events.ListenOption) <-chan events.Event {
	tb.Helper()
	ch := make(chan events.Event, 1024)
	l, err := events.Broadcast(context.Background(), js, func(_ context.Context, ev events.Event) error {
		ch <- ev
		return nil
	}, append([]events.ListenOption{events.WithDeliverAll(), events.WithLogger(quietLog)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, l.Close()) })
	return ch
}

// next returns the next event or fails after d.
func next(tb testing.TB, ch <-chan events.Event, d time.Duration) events.Event {
	tb.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(d):
		tb.Fatalf("no event within %v", d)
		return events.Event{}
	}
}

// nextN returns n events, failing if they take longer than d in all.
func nextN(tb testing.TB, ch <-chan events.Event, n int, d time.Duration) []events.Event {
	tb.Helper()
	deadline := time.After(d)
	out := make([]events.Event, 0, n)
	for len(out) < n {
		select {
		case ev := <-ch:
			out = append(out, ev)
		case <-deadline:
			tb.Fatalf("got %d of %d events within %v (last: %+v)", len(out), n, d, out[max(0, len(out)-3):])
		}
	}
	return out
}

// quiet fails if an event arrives within d.
func quiet(tb testing.TB, ch <-chan events.Event, d time.Duration) {
	tb.Helper()
	select {
	case ev := <-ch:
		tb.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

// idSet records handled event ids and counts duplicates.
type idSet struct {
	mu   sync.Mutex
	seen map[string]int
	list []events.Event
}

func newIDSet() *idSet { return &idSet{seen: map[string]int{}} }

func (s *idSet) add(ev events.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[ev.ID]++
	s.list = append(s.list, ev)
}

func (s *idSet) events() []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]events.Event(nil), s.list...)
}

// requireOrderedOnce checks that evs hold no duplicate id and that each
// session's revisions increase.
func requireOrderedOnce(tb testing.TB, evs []events.Event) {
	tb.Helper()
	seen := map[string]bool{}
	last := map[string]uint64{}
	for _, ev := range evs {
		require.False(tb, seen[ev.ID], "duplicate %s", ev.ID)
		seen[ev.ID] = true
		require.Greater(tb, ev.Revision, last[ev.SessionID], "out of order for %s", ev.SessionID)
		last[ev.SessionID] = ev.Revision
	}
}
