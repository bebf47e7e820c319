package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// task is an operation bound to what it runs on, as a phase runs it.
type task struct {
	name   string
	class  Class // 0 for the baseline's own operations
	weight int
	do     func(ctx context.Context, i uint64) error
}

// maxErrorSamples is how many distinct error messages a row keeps.
const maxErrorSamples = 3

// taskStats are one task's counters during a phase.
type taskStats struct {
	next, ok, errs atomic.Uint64
	mu             sync.Mutex
	samples        []string
}

func (s *taskStats) sample(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := err.Error(); len(s.samples) < maxErrorSamples && !slices.Contains(s.samples, msg) {
		s.samples = append(s.samples, msg)
	}
}

// phaseRun is one run of a phase: its schedule, clock and counters.
type phaseRun struct {
	tasks    []task
	schedule []int // the task of each slot, slot k taking schedule[k%len]
	stats    []taskStats
	hists    [][]Histogram // per worker, per task

	count uint64        // slots to run; 0: until end
	rate  float64       // slots per second; 0: as fast as the workers go
	start time.Time     // slot k is due at start + k/rate
	end   time.Time     // zero with a count
	seq   atomic.Uint64 // the next slot

	stopOnce  sync.Once
	stopped   chan struct{} // closed when a task ran out of prepared sessions
	exhausted atomic.Int64  // 1 + the index of that task
}

// runPhase runs tasks as one phase: cfg.Clients workers take slots in
// turn until cfg.Count slots ran or cfg.Duration passed, the ctx ends, or
// a task runs out of prepared sessions.
func (r *runner) runPhase(ctx context.Context, name string, tasks []task) PhaseReport {
	cfg := r.cfg
	weights := make([]int, len(tasks))
	for i, t := range tasks {
		weights[i] = t.weight
	}
	p := &phaseRun{
		tasks:    tasks,
		schedule: schedule(weights),
		stats:    make([]taskStats, len(tasks)),
		hists:    make([][]Histogram, cfg.Clients),
		count:    uint64(cfg.Count),
		rate:     cfg.Rate,
		stopped:  make(chan struct{}),
	}
	for w := range p.hists {
		p.hists[w] = make([]Histogram, len(tasks))
	}
	p.start = time.Now()
	if p.count == 0 {
		p.end = p.start.Add(cfg.Duration)
	}
	lastOps, lastAt := uint64(0), p.start
	stop := r.progress.start(name, func(final bool) string {
		var ops, errs uint64
		for i := range p.stats {
			ops += p.stats[i].ok.Load()
			errs += p.stats[i].errs.Load()
		}
		now := time.Now()
		if final { // the phase's average, not the last interval's
			lastOps, lastAt = 0, p.start
		}
		rate := float64(ops-lastOps) / now.Sub(lastAt).Seconds()
		lastOps, lastAt = ops, now
		return fmt.Sprintf("%d ops, %.0f ops/s, %d errors", ops, rate, errs)
	})
	var wg sync.WaitGroup
	for w := range cfg.Clients {
		wg.Go(func() { p.work(ctx, p.hists[w]) })
	}
	wg.Wait()
	elapsed := time.Since(p.start)
	stop()
	return p.report(name, elapsed, ctx.Err() != nil)
}

// work takes slots until the phase ends.
func (p *phaseRun) work(ctx context.Context, hists []Histogram) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	timed := p.count == 0
	for ctx.Err() == nil && !p.isStopped() {
		k := p.seq.Add(1) - 1
		if !timed && k >= p.count {
			return
		}
		var due time.Time
		if p.rate > 0 {
			due = p.start.Add(slotOffset(k, p.rate))
			if timed && (!due.Before(p.end) || !time.Now().Before(p.end)) {
				return // not due within the phase, or due but the phase is over: missed
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-p.stopped:
					return
				case <-timer.C:
				}
			}
		} else if due = time.Now(); timed && !due.Before(p.end) {
			return
		}
		t := p.schedule[k%uint64(len(p.schedule))]
		s := &p.stats[t]
		err := p.tasks[t].do(ctx, s.next.Add(1)-1)
		took := time.Since(due)
		switch {
		case errors.Is(err, errExhausted):
			p.exhausted.CompareAndSwap(0, int64(t)+1)
			p.stopOnce.Do(func() { close(p.stopped) })
			return
		case err != nil && ctx.Err() != nil:
			return // interrupted: not the bus's error
		case err != nil:
			s.errs.Add(1)
			s.sample(err)
		default:
			s.ok.Add(1)
			hists[t].Record(took)
		}
	}
}

func (p *phaseRun) isStopped() bool {
	select {
	case <-p.stopped:
		return true
	default:
		return false
	}
}

// report summarises the phase.
func (p *phaseRun) report(name string, elapsed time.Duration, interrupted bool) PhaseReport {
	rep := PhaseReport{Name: name, ElapsedSeconds: elapsed.Seconds(), Interrupted: interrupted}
	var total Histogram
	var totalErrs, started uint64
	for t, tk := range p.tasks {
		var h Histogram
		for w := range p.hists {
			h.Merge(&p.hists[w][t])
		}
		total.Merge(&h)
		s := &p.stats[t]
		row := newRow(tk.name, &h, s.errs.Load(), elapsed)
		row.ErrorSamples = s.samples
		row.class = tk.class
		rep.Rows = append(rep.Rows, row)
		totalErrs += row.Errors
		started += row.Ops + row.Errors
	}
	if len(p.tasks) > 1 {
		t := newRow(name, &total, totalErrs, elapsed)
		rep.Total = &t
	}
	if x := p.exhausted.Load(); x > 0 {
		rep.EndedEarly = fmt.Sprintf("%s used up its prepared sessions", p.tasks[x-1].name)
	}
	if p.rate > 0 && p.count == 0 && !interrupted && rep.EndedEarly == "" {
		if due := dueSlots(p.rate, p.end.Sub(p.start)); due > started {
			rep.Missed = due - started
		}
	}
	return rep
}

// newRow is the row of the calls recorded in h, over elapsed.
func newRow(name string, h *Histogram, errs uint64, elapsed time.Duration) Row {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Row{
		Op:        name,
		Ops:       h.Count(),
		Errors:    errs,
		OpsPerSec: float64(h.Count()) / elapsed.Seconds(),
		P50:       ms(h.Quantile(0.50)),
		P90:       ms(h.Quantile(0.90)),
		P99:       ms(h.Quantile(0.99)),
		P999:      ms(h.Quantile(0.999)),
		Max:       ms(h.Max()),
		Mean:      ms(h.Mean()),
	}
}

// slotOffset is when slot k is due after the phase's start, at rate
// slots per second.
func slotOffset(k uint64, rate float64) time.Duration {
	return time.Duration(float64(k) / rate * float64(time.Second))
}

// dueSlots is the number of slots due within d at rate.
func dueSlots(rate float64, d time.Duration) uint64 {
	k := uint64(math.Ceil(rate * d.Seconds()))
	for k > 0 && slotOffset(k-1, rate) >= d {
		k--
	}
	for slotOffset(k, rate) < d {
		k++
	}
	return k
}

// schedule spreads tasks over one cycle of slots in proportion to their
// weights, interleaved (smooth weighted round robin): weights 3,1 give
// 0,0,1,0. Its length is the sum of the weights over their gcd.
func schedule(weights []int) []int {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0
	for _, w := range weights {
		total += w / g
	}
	cur := make([]int, len(weights))
	out := make([]int, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w / g
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// slotsOf counts the slots of task t among the first n slots of sched.
func slotsOf(sched []int, t int, n uint64) uint64 {
	per := uint64(0)
	for _, x := range sched {
		if x == t {
			per++
		}
	}
	cycles, rest := n/uint64(len(sched)), n%uint64(len(sched))
	c := cycles * per
	for _, x := range sched[:rest] {
		if x == t {
			c++
		}
	}
	return c
}
