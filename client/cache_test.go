package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/natsapi"
	"github.com/session-bus/session-bus/sessioncache"
)

// cacheBus is a bus whose change notices pass through a switchboard the
// test controls before they reach the caches: the ways a feed can be cut.
type cacheBus struct {
	m   *bus.Manager
	pub *sessioncache.Publisher

	mu    sync.Mutex
	mode  feedMode
	delay time.Duration
}

type feedMode int

const (
	feedPass     feedMode = iota
	feedDropNext          // drop the next notice that names a session, then pass
	feedSilent            // drop everything (a dead or cut-off publisher)
	feedDelay             // deliver everything late
)

const (
	rawNotices = "test.notices.raw" // what the bus publishes
	feed       = "test.notices"     // what the caches follow
)

func runCacheBus(tb testing.TB, srv *server.Server, idle time.Duration) *cacheBus {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	nc := natstest.Connect(tb, srv)
	b := &cacheBus{pub: sessioncache.NewPublisher(nc, rawNotices)}
	var err error
	b.m, err = bus.New(bus.NewMemoryStore(), "bus", idle, bus.WithLogger(quiet),
		bus.WithTouchInterval(time.Second), bus.WithChangeNotifier(b.pub.Notify))
	require.NoError(tb, err)
	svc, err := natsapi.New(nc, b.m, natsapi.WithLogger(quiet))
	require.NoError(tb, err)

	relay := natstest.Connect(tb, srv)
	_, err = relay.Subscribe(rawNotices, func(msg *nats.Msg) {
		b.mu.Lock()
		mode, delay := b.mode, b.delay
		if mode == feedDropNext && hasIDs(msg.Data) {
			b.mode = feedPass
		}
		b.mu.Unlock()
		switch mode {
		case feedDropNext:
			if hasIDs(msg.Data) {
				return
			}
		case feedSilent:
			return
		case feedDelay:
			time.Sleep(delay)
		}
		_ = relay.Publish(feed, msg.Data)
	})
	require.NoError(tb, err)
	require.NoError(tb, relay.Flush())
	tb.Cleanup(func() {
		require.NoError(tb, svc.Close())
		b.pub.Close()
	})
	return b
}

func (b *cacheBus) set(mode feedMode, delay time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mode, b.delay = mode, delay
}

func hasIDs(data []byte) bool {
	var n bus.CacheNotice
	return json.Unmarshal(data, &n) == nil && len(n.SessionIDs) > 0
}

func cachedClient(tb testing.TB, nc *nats.Conn, cfg client.CacheConfig) *client.Client {
	tb.Helper()
	if cfg.Subject == "" {
		cfg.Subject = feed
	}
	c := newClient(tb, nc, client.WithServiceID("reader"), client.WithCache(cfg))
	tb.Cleanup(c.Close)
	return c
}

// waitCurrent waits until the cache answers: its feed has been heard.
func waitCurrent(tb testing.TB, c *client.Client) {
	tb.Helper()
	require.Eventually(tb, func() bool { return c.CacheStats().Current }, natstest.Patience, 5*time.Millisecond)
}

// warm reads s until it is answered from memory.
func warm(tb testing.TB, c *client.Client, id string) {
	tb.Helper()
	ctx := context.Background()
	require.Eventually(tb, func() bool {
		before := c.CacheStats().Hits
		_, err := c.GetSession(ctx, id)
		require.NoError(tb, err)
		return c.CacheStats().Hits > before
	}, natstest.Patience, time.Millisecond)
}

func TestCache_ServesFromMemoryAndSeesChanges(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	b := runCacheBus(t, srv, time.Hour)
	writer := newClient(t, natstest.Connect(t, srv), client.WithServiceID("writer"))
	reader := cachedClient(t, natstest.Connect(t, srv), client.CacheConfig{})
	waitCurrent(t, reader)
	ctx := context.Background()

	s, err := writer.CreateSession(ctx, "alice", "tok-a", bus.WithAttributes(map[string]string{"role": "user"}))
	require.NoError(t, err)
	warm(t, reader, s.SessionID)
	got, err := reader.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "user", got.Attributes["role"])
	got.Attributes["role"] = "mutated by the caller"
	v, ok, err := reader.GetAttribute(ctx, s.SessionID, "role")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "user", v, "a caller's copy is its own")

	// By token: the first read fills, the next is a hit.
	_, err = reader.GetSessionByToken(ctx, "tok-a")
	require.NoError(t, err)
	byToken, err := reader.GetSessionByToken(ctx, "tok-a")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, byToken.SessionID)
	_, err = reader.GetSessionByToken(ctx, "tok-other")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)

	// Another service's write: the cached reader sees it as soon as the
	// notice is applied (it reached the server before the write's reply).
	require.NoError(t, writer.SetAttribute(ctx, s.SessionID, "role", "admin"))
	require.Eventually(t, func() bool {
		v, _, err := reader.GetAttribute(ctx, s.SessionID, "role")
		return err == nil && v == "admin"
	}, natstest.Patience, time.Millisecond)

	// A delete, and a logout-all by another service.
	require.NoError(t, writer.DeleteSession(ctx, s.SessionID))
	require.Eventually(t, func() bool {
		_, err := reader.GetSessionByToken(ctx, "tok-a")
		return err != nil
	}, natstest.Patience, time.Millisecond)
	_, err = reader.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)

	s2, err := writer.CreateSession(ctx, "bob", "tok-b")
	require.NoError(t, err)
	warm(t, reader, s2.SessionID)
	_, err = b.m.DeleteAllSessions(ctx, "bob")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := reader.GetSession(ctx, s2.SessionID)
		return err != nil
	}, natstest.Patience, time.Millisecond)
	assert.GreaterOrEqual(t, reader.CacheStats().Invalidations, uint64(3))
}

// TestCache_OwnWritesAreSeenAtOnce: a client reads its own writes, with no
// wait for the notice.
func TestCache_OwnWritesAreSeenAtOnce(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	runCacheBus(t, srv, time.Hour)
	c := cachedClient(t, natstest.Connect(t, srv), client.CacheConfig{})
	waitCurrent(t, c)
	ctx := context.Background()
	for i := range 50 {
		s, err := c.CreateSession(ctx, "own", fmt.Sprintf("tok-own-%d", i))
		require.NoError(t, err)
		warm(t, c, s.SessionID)
		require.NoError(t, c.SetAttribute(ctx, s.SessionID, "n", "1"))
		v, _, err := c.GetAttribute(ctx, s.SessionID, "n")
		require.NoError(t, err)
		require.Equal(t, "1", v)
		require.NoError(t, c.DeleteSession(ctx, s.SessionID))
		_, err = c.GetSession(ctx, s.SessionID)
		require.ErrorIs(t, err, bus.ErrSessionNotFound)
	}
	s, err := c.CreateSession(ctx, "own-all", "tok-own-all")
	require.NoError(t, err)
	warm(t, c, s.SessionID)
	_, err = c.DeleteAllSessions(ctx, "own-all")
	require.NoError(t, err)
	_, err = c.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}

// TestCache_FailsClosed cuts the feed in each way it can be cut, then
// revokes a cached session through the bus: once the cut is detected, the
// revoked session is never served, and the cache answers again once its
// feed is whole.
func TestCache_FailsClosed(t *testing.T) {
	t.Parallel()
	const maxLag = 400 * time.Millisecond
	cuts := []struct {
		name string
		// cut breaks the feed and returns what the cache shows once it has
		// noticed (checked before the revocation, except for a dropped
		// notice, which is the revocation's own).
		cut     func(t *testing.T, b *cacheBus, nc *nats.Conn, srv *server.Server)
		restore func(b *cacheBus)
	}{
		{name: "lost notice (gap)", cut: func(*testing.T, *cacheBus, *nats.Conn, *server.Server) {}},
		{name: "silent publisher", cut: func(_ *testing.T, b *cacheBus, _ *nats.Conn, _ *server.Server) {
			b.set(feedSilent, 0)
		}},
		{name: "late notices", cut: func(_ *testing.T, b *cacheBus, _ *nats.Conn, _ *server.Server) {
			b.set(feedDelay, 2*maxLag)
		}},
		{name: "reconnect", cut: func(t *testing.T, _ *cacheBus, nc *nats.Conn, _ *server.Server) {
			require.NoError(t, nc.ForceReconnect())
		}},
		{name: "malformed notice", cut: func(t *testing.T, _ *cacheBus, _ *nats.Conn, srv *server.Server) {
			require.NoError(t, natstest.Connect(t, srv).Publish(feed, []byte(`{"p":"x"`)))
		}},
		{name: "new publisher whose first notices were lost", cut: func(t *testing.T, _ *cacheBus, _ *nats.Conn, srv *server.Server) {
			data, _ := json.Marshal(bus.CacheNotice{Publisher: "newcomer", Seq: 7, SentAt: time.Now().UnixNano()})
			require.NoError(t, natstest.Connect(t, srv).Publish(feed, data))
		}},
	}
	for _, tt := range cuts {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.RunServer(t)
			b := runCacheBus(t, srv, time.Hour)
			nc := natstest.Connect(t, srv, nats.ReconnectWait(10*time.Millisecond))
			c := cachedClient(t, nc, client.CacheConfig{MaxLag: maxLag})
			waitCurrent(t, c)
			ctx := context.Background()
			s, err := b.m.CreateSession(ctx, "victim", "tok-v")
			require.NoError(t, err)
			warm(t, c, s.SessionID)
			flushes := c.CacheStats().Flushes

			if tt.name == "lost notice (gap)" {
				// The revocation's own notice is lost: the next heartbeat
				// shows the gap.
				b.set(feedDropNext, 0)
				require.NoError(t, b.m.DeleteSession(ctx, s.SessionID))
			} else {
				tt.cut(t, b, nc, srv)
			}
			require.Eventually(t, func() bool {
				st := c.CacheStats()
				return st.Flushes > flushes || !st.Current
			}, natstest.Patience, time.Millisecond, "the cut is noticed")
			// The revocation's own notice is lost too (where the feed
			// still flows): only failing closed keeps it from being served.
			b.mu.Lock()
			if b.mode == feedPass {
				b.mode = feedDropNext
			}
			b.mu.Unlock()
			require.NoError(t, b.m.DeleteSession(ctx, s.SessionID))
			for range 20 {
				_, err := c.GetSession(ctx, s.SessionID)
				require.ErrorIs(t, err, bus.ErrSessionNotFound, "a revoked session is never served")
			}

			// Whole again: the cache answers from memory again.
			b.set(feedPass, 0)
			waitCurrent(t, c)
			s2, err := b.m.CreateSession(ctx, "next", "tok-n")
			require.NoError(t, err)
			warm(t, c, s2.SessionID)
			_, err = c.GetSession(ctx, s.SessionID)
			require.ErrorIs(t, err, bus.ErrSessionNotFound)
		})
	}
}

// TestCache_NeverPastExpiry: a cached copy is not served at or after its
// expires_at, whatever the feed says.
func TestCache_NeverPastExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a TTL")
	}
	t.Parallel()
	srv := natstest.RunServer(t)
	b := runCacheBus(t, srv, 2*time.Second)
	c := cachedClient(t, natstest.Connect(t, srv), client.CacheConfig{TouchInterval: time.Hour})
	waitCurrent(t, c)
	ctx := context.Background()
	s, err := b.m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	warm(t, c, s.SessionID)
	for {
		before := time.Now()
		got, err := c.GetSession(ctx, s.SessionID)
		if err != nil {
			require.ErrorIs(t, err, bus.ErrSessionNotFound)
			break
		}
		require.True(t, before.Before(got.ExpiresAt), "asked at %v, expires %v", before, got.ExpiresAt)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCache_TouchesKeepSessionsAlive: a session read only from memory
// slides its idle timeout through batched touches, which session.read
// allows.
func TestCache_TouchesKeepSessionsAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past an idle timeout")
	}
	t.Parallel()
	srv := natstest.RunServer(t)
	b := runCacheBus(t, srv, 3*time.Second)
	c := cachedClient(t, natstest.Connect(t, srv), client.CacheConfig{TouchInterval: 300 * time.Millisecond})
	waitCurrent(t, c)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		s, err := b.m.CreateSession(ctx, "u", fmt.Sprintf("t%d", i))
		require.NoError(t, err)
		ids = append(ids, s.SessionID)
	}
	end := time.Now().Add(7 * time.Second) // over twice the idle timeout
	for time.Now().Before(end) {
		for _, id := range ids {
			_, err := c.GetSession(ctx, id)
			require.NoError(t, err, "a session in use does not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := c.CacheStats()
	assert.Greater(t, st.Hits, st.Misses, "mostly from memory")
	assert.NotZero(t, st.Touches)
	assert.Zero(t, st.TouchErrors)
	// Touches are batched and bounded: at most one per session per
	// interval (plus the bus's own reads on misses).
	assert.LessOrEqual(t, st.Touches, uint64(len(ids))*uint64(7*time.Second/(300*time.Millisecond)+1))
}

// TestCache_Bounded: the cache holds at most its entry bound.
func TestCache_Bounded(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	b := runCacheBus(t, srv, time.Hour)
	c := cachedClient(t, natstest.Connect(t, srv), client.CacheConfig{MaxEntries: 256})
	waitCurrent(t, c)
	ctx := context.Background()
	for i := range 2000 {
		s, err := b.m.CreateSession(ctx, "u", fmt.Sprintf("tok-%d", i))
		require.NoError(t, err)
		_, err = c.GetSession(ctx, s.SessionID)
		require.NoError(t, err)
	}
	st := c.CacheStats()
	assert.LessOrEqual(t, st.Entries, 256)
	assert.NotZero(t, st.Evictions)
}
