package events_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/internal/relaybench"
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
// write rate through the manager and the relay's (see package relaybench;
// integration's BenchmarkRelayBesideClientWrites writes through the client).
//
//	go test -run '^$' -bench BenchmarkRelayBesideWrites -benchtime 1x ./events
func BenchmarkRelayBesideWrites(b *testing.B) {
	for range b.N {
		e := newEnv(b, time.Hour)
		if _, err := events.EnsureStream(context.Background(), e.js, events.DefaultStreamConfig()); err != nil {
			b.Fatal(err)
		}
		relaybench.Run(b, relaybench.Config{
			Write: func(ctx context.Context, w, i int) error {
				_, err := e.m.CreateSession(ctx, fmt.Sprintf("w%d", w), fmt.Sprintf("w%d-%d", w, i))
				return err
			},
			StartRelay: func() func() {
				r := startRelay(b, e)
				return func() { _ = r.Close() }
			},
			Events: collect(b, e.js),
		})
	}
}

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
