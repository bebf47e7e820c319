package main

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/session-bus/session-bus/internal/loadgen"
)

// op is one call of a row: i numbers the calls of the row, spread over
// the goroutines (goroutine g makes calls g, g+n, g+2n, ...).
type op func(ctx context.Context, i uint64) error

// result is what a closed-loop row measured.
type result struct {
	ops, errors uint64
	elapsed     time.Duration
	hist        loadgen.Histogram
	// mallocs and bytes are the whole process's allocations during the
	// row (runtime.MemStats deltas).
	mallocs, bytes uint64
	firstErr       error
}

// closedLoop runs op on n goroutines, each calling again as soon as its
// call returns, for d (a call that began before the end completes).
// Latency is each successful call's; failed calls are counted.
func closedLoop(ctx context.Context, n int, d time.Duration, do op) result {
	hists := make([]loadgen.Histogram, n)
	errs := make([]uint64, n)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	runtime.GC() // start each row with the previous row's garbage gone
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	end := start.Add(d)
	for g := range n {
		wg.Go(func() {
			h := &hists[g]
			for i := uint64(g); ; i += uint64(n) {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				if err := do(ctx, i); err != nil {
					errs[g]++
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				h.Record(time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start)}
	runtime.ReadMemStats(&after)
	for g := range n {
		r.hist.Merge(&hists[g])
		r.errors += errs[g]
	}
	r.ops = r.hist.Count()
	r.mallocs, r.bytes = after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	return r
}

// staleGiveUp bounds how long a reader keeps reading the old state after
// a change before the change counts as never seen.
const staleGiveUp = 10 * time.Second

// readerSpin is the pause between a reader's reads, as in the
// integration package's BenchmarkRevocation.
const readerSpin = 20 * time.Microsecond

// lagAfterAck measures one change by BenchmarkRevocation's method: each
// reader reads in a loop until a read no longer shows the old state
// (stale returns false); change runs 1 ms after they began, and its
// acknowledgement time is when it returned. A reader's lag is the start
// of its last read that still saw the old state minus that time, 0 when
// that read began before the ack. It returns one lag per reader, and
// how many readers gave up after staleGiveUp (their lag is counted).
func lagAfterAck(readers []func() bool, change func() error) (lags []time.Duration, gaveUp int, err error) {
	var acked atomic.Int64
	var wg sync.WaitGroup
	lags = make([]time.Duration, len(readers))
	gave := make([]bool, len(readers))
	for i, stale := range readers {
		wg.Go(func() {
			var lastStale time.Time
			begin := time.Now()
			for {
				start := time.Now()
				if !stale() {
					break
				}
				lastStale = start
				if start.Sub(begin) > staleGiveUp {
					gave[i] = true
					break
				}
				time.Sleep(readerSpin)
			}
			for acked.Load() == 0 { // the change has not returned yet
				time.Sleep(10 * time.Microsecond)
			}
			if d := lastStale.Sub(time.Unix(0, acked.Load())); d > 0 {
				lags[i] = d
			}
		})
	}
	time.Sleep(time.Millisecond) // readers spinning on hits
	err = change()
	acked.Store(time.Now().UnixNano())
	wg.Wait()
	for _, g := range gave {
		if g {
			gaveUp++
		}
	}
	return lags, gaveUp, err
}

// lagHistogram collects lags.
func lagHistogram(lags []time.Duration) *loadgen.Histogram {
	var h loadgen.Histogram
	for _, d := range lags {
		h.Record(d)
	}
	return &h
}
