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
