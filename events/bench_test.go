package events_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/session-bus/session-bus/events"
)

// BenchmarkDeleteAllToListener measures the time from DeleteAllSessions
// returning to a group listener having received every session.deleted.
func BenchmarkDeleteAllToListener(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			e := newEnv(b, time.Hour)
			startRelay(b, e.js)
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
		r := startRelay(b, e.js) // creates the events stream, then steps aside
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
		startRelay(b, e.js)
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
