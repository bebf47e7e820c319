// Package relaybench measures the event relay beside the writes it
// announces, in one run on one server: the write rate, event lag while
// writing at that rate, drain time, and the relay's catch-up rate on a
// backlog. Benchmarks in events (writes through the manager) and
// integration (writes through the client, over NATS) share it. Only tests
// import it.
package relaybench

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/session-bus/session-bus/events"
)

// Config says how to write and how to run the relay.
type Config struct {
	// Write makes change i of writer w (a session create); it is called
	// from Writers goroutines at once.
	Write func(ctx context.Context, w, i int) error
	// Writers: 32 by default.
	Writers int
	// StartRelay starts a relay; stop stops it.
	StartRelay func() (stop func())
	// Events delivers every event announced (a broadcast listener).
	Events <-chan events.Event
	// Backlog is the creates made while no relay runs: 20,000 by default.
	Backlog int
}

// WriteFor is how long the sustained phase writes: 3 s, or RELAY_BENCH_WRITE
// (a duration, e.g. 3m) for the long run.
func WriteFor() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RELAY_BENCH_WRITE")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

// Run measures and reports: writes/s, catchup-events/s, catchup-x (catch-up
// over write rate), lag-p50-ms and lag-p99-ms (receipt by the listener
// minus the change's time, while writing), drain-ms (last event after the
// last write's acknowledgement).
func Run(b *testing.B, cfg Config) {
	if cfg.Writers == 0 {
		cfg.Writers = 32
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = 20_000
	}
	ctx := context.Background()
	stop := cfg.StartRelay()

	var written atomic.Int64
	var over atomic.Bool
	var lag []time.Duration
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for !over.Load() || int64(len(lag)) < written.Load() {
			select {
			case ev := <-cfg.Events:
				lag = append(lag, time.Since(ev.Time))
			case <-tick.C:
			}
		}
	}()
	writeFor := WriteFor()
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Writers {
		wg.Go(func() {
			for i := 0; time.Since(t0) < writeFor; i++ {
				if err := cfg.Write(ctx, w, i); err != nil {
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
	over.Store(true)
	select {
	case <-lagDone:
	case <-time.After(time.Minute):
		b.Fatal("events missing a minute after the last write")
	}
	drained := time.Since(lastAck)
	slices.Sort(lag)

	stop()
	var bw sync.WaitGroup
	for w := range cfg.Writers {
		bw.Go(func() {
			for i := w; i < cfg.Backlog; i += cfg.Writers {
				if err := cfg.Write(ctx, -1, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	bw.Wait()
	t1 := time.Now()
	cfg.StartRelay()
	for range cfg.Backlog {
		select {
		case <-cfg.Events:
		case <-time.After(time.Minute):
			b.Fatal("backlog not announced within a minute")
		}
	}
	catchUp := float64(cfg.Backlog) / time.Since(t1).Seconds()
	b.ReportMetric(writeRate, "writes/s")
	b.ReportMetric(catchUp, "catchup-events/s")
	b.ReportMetric(catchUp/writeRate, "catchup-x")
	b.ReportMetric(percentile(lag, 0.50).Seconds()*1e3, "lag-p50-ms")
	b.ReportMetric(percentile(lag, 0.99).Seconds()*1e3, "lag-p99-ms")
	b.ReportMetric(drained.Seconds()*1e3, "drain-ms")
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}
