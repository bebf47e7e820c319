package integration_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// cachedClient is a client with a cache on its own connection, current.
func newCachedClient(tb testing.TB, env *busEnv, id string) *client.Client {
	tb.Helper()
	c, err := client.New(natstest.Connect(tb, env.srv), client.WithServiceID(id), client.WithCache(client.CacheConfig{}))
	require.NoError(tb, err)
	tb.Cleanup(c.Close)
	require.Eventually(tb, func() bool { return c.CacheStats().Current }, natstest.Patience, 5*time.Millisecond)
	return c
}

// BenchmarkCache measures reads through a cached client beside raw
// kv.Get on the same server in the same run, and the uncached reads that
// the bus answers from its own cache (one hop).
func BenchmarkCache(b *testing.B) {
	env := newBusEnv(b, 1, time.Hour)
	ctx := context.Background()
	ids := make([]string, benchSessions)
	tokens := make([]string, benchSessions)
	for i := range ids {
		tokens[i] = fmt.Sprintf("cache-token-%d", i)
		s, err := env.client.CreateSession(ctx, fmt.Sprintf("cache-login-%d", i%100), tokens[i],
			bus.WithAttributes(map[string]string{"role": "user", "k": strings.Repeat("v", 16)}))
		require.NoError(b, err)
		ids[i] = s.SessionID
	}
	kv := rawBucket(b, env)
	cached := newCachedClient(b, env, "cached")
	for i := range ids { // warm: every session held
		_, err := cached.GetSession(ctx, ids[i])
		require.NoError(b, err)
		_, err = cached.GetSessionByToken(ctx, tokens[i])
		require.NoError(b, err)
	}
	ops := []struct {
		name string
		op   func(i int) error
	}{
		{"kv_get", func(i int) error { _, err := kv.Get(ctx, fmt.Sprintf("k%d", i%benchSessions)); return err }},
		{"cached_get", func(i int) error { _, err := cached.GetSession(ctx, ids[i%benchSessions]); return err }},
		{"cached_get_by_token", func(i int) error {
			_, err := cached.GetSessionByToken(ctx, tokens[i%benchSessions])
			return err
		}},
		{"cached_get_attribute", func(i int) error {
			_, _, err := cached.GetAttribute(ctx, ids[i%benchSessions], "role")
			return err
		}},
		{"get", func(i int) error { _, err := env.client.GetSession(ctx, ids[i%benchSessions]); return err }},
		{"get_by_token", func(i int) error {
			_, err := env.client.GetSessionByToken(ctx, tokens[i%benchSessions])
			return err
		}},
	}
	for _, o := range ops {
		b.Run(fmt.Sprintf("op=%s/goroutines=16", o.name), func(b *testing.B) {
			before := cached.CacheStats()
			runParallel(b, 16, o.op)
			after := cached.CacheStats()
			if n := after.Hits + after.Misses + after.FallThroughs - before.Hits - before.Misses - before.FallThroughs; n > 0 {
				b.ReportMetric(float64(after.Hits-before.Hits)/float64(n), "hit-ratio")
			}
		})
	}
}

// BenchmarkRevocation measures how long after a change is acknowledged to
// its caller any cache still serves the old state: four cached clients
// (each its own connection) read a session while another service deletes
// it, logs its user out everywhere, or changes an attribute. Beside it,
// writers keep the bus at 80 % of the write rate it reached just before
// (CACHE_BENCH_LOAD=0 turns that off). Reported: p50, p99 and max over
// every cache and change, in microseconds.
func BenchmarkRevocation(b *testing.B) {
	const readers = 4
	env := newBusEnv(b, 1, time.Hour)
	ctx := context.Background()
	caches := make([]*client.Client, readers)
	for i := range caches {
		caches[i] = newCachedClient(b, env, fmt.Sprintf("reader-%d", i))
	}
	writer, err := client.New(natstest.Connect(b, env.srv), client.WithServiceID("revoker"))
	require.NoError(b, err)

	stopLoad := func() float64 { return 0 }
	var rate float64
	if os.Getenv("CACHE_BENCH_LOAD") != "0" {
		rate = topWriteRate(b, env)
		stopLoad = paceWrites(b, env, rate*0.8)
	}

	var lags []time.Duration
	b.ResetTimer()
	for n := range b.N {
		for kind := range 3 {
			login := fmt.Sprintf("rev-%d-%d", n, kind)
			s, err := writer.CreateSession(ctx, login, "tok-"+login, bus.WithAttributes(map[string]string{"role": "admin"}))
			require.NoError(b, err)
			for _, c := range caches {
				warmCache(b, c, s.SessionID)
			}
			// stale reports whether a read shows the state before the change.
			stale := func(c *client.Client) bool {
				got, err := c.GetSession(ctx, s.SessionID)
				return err == nil && got.Attributes["role"] == "admin"
			}
			var acked atomic.Int64
			var wg sync.WaitGroup
			results := make([]time.Duration, readers)
			for i, c := range caches {
				wg.Go(func() {
					var lastStale time.Time
					for {
						start := time.Now()
						if !stale(c) {
							break
						}
						lastStale = start
						time.Sleep(20 * time.Microsecond)
					}
					// Wait for the writer's acknowledgement time.
					for acked.Load() == 0 {
						time.Sleep(10 * time.Microsecond)
					}
					if d := lastStale.Sub(time.Unix(0, acked.Load())); d > 0 {
						results[i] = d
					}
				})
			}
			time.Sleep(time.Millisecond) // readers spinning on hits
			switch kind {
			case 0:
				err = writer.DeleteSession(ctx, s.SessionID)
			case 1:
				_, err = writer.DeleteAllSessions(ctx, login)
			case 2:
				err = writer.SetAttribute(ctx, s.SessionID, "role", "user")
			}
			acked.Store(time.Now().UnixNano())
			require.NoError(b, err)
			wg.Wait()
			lags = append(lags, results...)
		}
	}
	b.StopTimer()
	b.ReportMetric(rate, "top-writes/s")
	b.ReportMetric(stopLoad(), "load-writes/s")
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds()), "max-us")
}

func warmCache(tb testing.TB, c *client.Client, id string) {
	tb.Helper()
	ctx := context.Background()
	require.Eventually(tb, func() bool {
		before := c.CacheStats().Hits
		_, err := c.GetSession(ctx, id)
		require.NoError(tb, err)
		return c.CacheStats().Hits > before
	}, natstest.Patience, 100*time.Microsecond)
}

// topWriteRate measures set_attribute calls per second through the client
// with 16 goroutines for 2 seconds.
func topWriteRate(tb testing.TB, env *busEnv) float64 {
	ids := loadSessions(tb, env)
	var n atomic.Int64
	end := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; time.Now().Before(end); i += 16 {
				if env.client.SetAttribute(context.Background(), ids[i%len(ids)], "load", fmt.Sprint(i)) == nil {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / 2
}

// paceWrites keeps 16 writers at rate set_attribute calls per second until
// the returned stop is called, which returns the rate they reached.
func paceWrites(tb testing.TB, env *busEnv, rate float64) (stop func() float64) {
	ids := loadSessions(tb, env)
	done := make(chan struct{})
	tick := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		sent := 0
		for {
			select {
			case <-done:
				close(tick)
				return
			case <-time.After(time.Millisecond):
			}
			due := int(time.Since(start).Seconds() * rate)
			for ; sent < due; sent++ {
				select {
				case tick <- struct{}{}:
				default: // behind: skip rather than burst
				}
			}
		}
	})
	var n atomic.Int64
	began := time.Now()
	for w := range 16 {
		wg.Go(func() {
			i := w
			for range tick {
				if env.client.SetAttribute(context.Background(), ids[i%len(ids)], "load", fmt.Sprint(i)) == nil {
					n.Add(1)
				}
				i += 16
			}
		})
	}
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(n.Load()) / time.Since(began).Seconds()
	}
}

func loadSessions(tb testing.TB, env *busEnv) []string {
	ids := make([]string, 256)
	for i := range ids {
		s, err := env.client.CreateSession(context.Background(), fmt.Sprintf("load-%d", i%32), fmt.Sprintf("load-tok-%d-%d", i, time.Now().UnixNano()))
		require.NoError(tb, err)
		ids[i] = s.SessionID
	}
	return ids
}
