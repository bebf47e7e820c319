package events_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

// BenchmarkDeleteAllToListener measures the time from DeleteAllSessions
// returning to a group listener having received every session.deleted.
func BenchmarkDeleteAllToListener(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			e := newEnv(b, time.Hour)
			startRelay(b, e)
			got := make(chan events.Event, 1024)
			listen(b, e, "bench", func(_ context.Context, ev events.Event) error {
				got <- ev
				return nil
			}, events.WithTypes(events.SessionDeleted))
			ctx := context.Background()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				login := fmt.Sprintf("user-%d", i)
				i++
				for j := range n {
					if _, err := e.m.CreateSession(ctx, login, fmt.Sprintf("%s-%d", login, j)); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := e.m.DeleteAllSessions(ctx, login); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				deadline := time.After(10 * time.Second)
				for range n {
					select {
					case <-got:
					case <-deadline:
						b.Fatal("events missing")
					}
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(pct(lat, 0.50).Seconds()*1e3, "p50-ms")
			b.ReportMetric(pct(lat, 0.99).Seconds()*1e3, "p99-ms")
		})
	}
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkRelayCatchUp measures how fast a relay announces a backlog:
// 2,000 creates land while no relay runs, then one starts; the figure is
// events stored per second until the last is seen. It bounds how far a
// relay can fall behind under sustained writes.
func BenchmarkRelayCatchUp(b *testing.B) {
	const backlog = 2000
	for range b.N {
		b.StopTimer()
		e := newEnv(b, time.Hour)
		r := startRelay(b, e) // creates the events stream, then steps aside
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for i := range backlog {
			if _, err := e.m.CreateSession(ctx, fmt.Sprintf("u%d", i), fmt.Sprintf("t%d", i)); err != nil {
				b.Fatal(err)
			}
		}
		got := make(chan events.Event, backlog)
		l, err := events.Broadcast(ctx, e.js, func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}, events.WithDeliverAll(), events.WithLogger(quietLog))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		startRelay(b, e)
		deadline := time.After(time.Minute)
		for range backlog {
			select {
			case <-got:
			case <-deadline:
				b.Fatal("backlog not announced within a minute")
			}
		}
		b.ReportMetric(backlog/time.Since(t0).Seconds(), "events/s")
		b.StopTimer()
		_ = l.Close()
		b.StartTimer()
	}
}

// BenchmarkRelayBesideWrites measures, in one run on one server, the bus's
// write rate and the relay's: 32 goroutines create sessions as fast as the
// bus takes them for 3 s (see writeFor) while the relay announces them (writes/s, and
// event lag: receipt by a listener minus the change's time), then, with
// the relay stopped, a backlog of 20,000 creates is announced by a relay
// that starts (catch-up events/s). catchup-x is catch-up over write rate.
//
//	go test -run '^$' -bench BenchmarkRelayBesideWrites -benchtime 1x ./events
func BenchmarkRelayBesideWrites(b *testing.B) {
	for range b.N {
		e := newEnv(b, time.Hour)
		r := startRelay(b, e)
		got := make(chan events.Event, 1<<20)
		ctx := context.Background()
		l, err := events.Broadcast(ctx, e.js, func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}, events.WithLogger(quietLog))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })

		// Sustained writes with the relay running.
		var lag []time.Duration
		lagDone := make(chan struct{})
		var written atomic.Int64
		var writesOver atomic.Bool
		go func() {
			defer close(lagDone)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for !writesOver.Load() || int64(len(lag)) < written.Load() {
				select {
				case ev := <-got:
					lag = append(lag, time.Since(ev.Time))
				case <-tick.C:
				}
			}
		}()
		t0 := time.Now()
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := 0; time.Since(t0) < writeFor; i++ {
					if _, err := e.m.CreateSession(ctx, fmt.Sprintf("w%d", w), fmt.Sprintf("w%d-%d", w, i)); err != nil {
						b.Error(err)
						return
					}
					written.Add(1)
				}
			})
		}
		wg.Wait()
		writeRate := float64(written.Load()) / time.Since(t0).Seconds()
		lastAck := time.Now()
		writesOver.Store(true)
		select {
		case <-lagDone:
		case <-time.After(time.Minute):
			b.Fatal("events missing after a minute")
		}
		drained := time.Since(lastAck)
		slices.Sort(lag)

		// Catch-up: a backlog while no relay runs, then a relay starts.
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		const backlog = 20_000
		var bw sync.WaitGroup
		for w := range 32 {
			bw.Go(func() {
				for i := w; i < backlog; i += 32 {
					if _, err := e.m.CreateSession(ctx, "backlog", fmt.Sprintf("b%d", i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		bw.Wait()
		t1 := time.Now()
		startRelay(b, e)
		for range backlog {
			select {
			case <-got:
			case <-time.After(time.Minute):
				b.Fatal("backlog not announced within a minute")
			}
		}
		catchUp := backlog / time.Since(t1).Seconds()
		b.ReportMetric(writeRate, "writes/s")
		b.ReportMetric(catchUp, "catchup-events/s")
		b.ReportMetric(catchUp/writeRate, "catchup-x")
		b.ReportMetric(pct(lag, 0.50).Seconds()*1e3, "lag-p50-ms")
		b.ReportMetric(pct(lag, 0.99).Seconds()*1e3, "lag-p99-ms")
		b.ReportMetric(drained.Seconds()*1e3, "drain-ms")
	}
}

// writeFor is how long BenchmarkRelayBesideWrites writes: 3 s, or
// RELAY_BENCH_WRITE (a duration, e.g. 3m) for the long run.
var writeFor = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RELAY_BENCH_WRITE")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}()

// BenchmarkExpiryLateness measures how late session.expired reaches a
// listener after the session's ExpiresAt, for sessions that end idle and
// for sessions that reach their absolute lifetime (--max-lifetime) after a
// use at a fraction of a second into the second.
//
//	go test -run '^$' -bench BenchmarkExpiryLateness -benchtime 1x ./events
func BenchmarkExpiryLateness(b *testing.B) {
	const sessions = 40
	for _, tc := range []struct {
		name string
		opts []bus.Option
		idle time.Duration
	}{
		{"idle", nil, 2 * time.Second},
		{"lifetime", []bus.Option{bus.WithMaxLifetime(3 * time.Second), bus.WithTouchInterval(10 * time.Millisecond)}, time.Minute},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				js := natstest.JetStream(b, natstest.RunServer(b))
				st, err := kvstore.New(context.Background(), js, kvstore.DefaultConfig())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(st.Close)
				m, err := bus.New(st, "svc-a", tc.idle, tc.opts...)
				if err != nil {
					b.Fatal(err)
				}
				e := &env{js: js, m: m, feed: st}
				startRelay(b, e)
				ch := collect(b, js, events.WithTypes(events.SessionExpired))
				ctx := context.Background()
				ends := map[string]time.Time{}
				for i := range sessions {
					s, err := m.CreateSession(ctx, "u", fmt.Sprint("t", i))
					if err != nil {
						b.Fatal(err)
					}
					ends[s.SessionID] = s.ExpiresAt
				}
				if tc.name == "lifetime" {
					time.Sleep(1370 * time.Millisecond) // a use at a fraction of a second
					for id := range ends {
						s, err := m.RefreshSession(ctx, id)
						if err != nil {
							b.Fatal(err)
						}
						ends[id] = s.ExpiresAt
					}
				}
				var late []time.Duration
				for range sessions {
					ev := next(b, ch, natstest.Patience)
					late = append(late, time.Since(ends[ev.SessionID]))
				}
				slices.Sort(late)
				b.ReportMetric(pct(late, 0.50).Seconds()*1e3, "late-p50-ms")
				b.ReportMetric(pct(late, 0.99).Seconds()*1e3, "late-p99-ms")
				b.ReportMetric(late[0].Seconds()*1e3, "late-min-ms")
			}
		})
	}
}
