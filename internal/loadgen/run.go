package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// runner is one Run's state.
type runner struct {
	cfg      Config
	target   Target
	fix      *fixture
	progress progress
	base     bus.Sessions            // the client of ops without options, and of the setup
	clients  map[string]bus.Sessions // by op name, for ops with client options
	pooled   bool                    // the pool exists
}

// Run prepares the sessions cfg's phases need, runs the baseline when the
// target has one, then each phase in order, and returns what it measured.
// Calls that fail are counted in the report, not returned. It returns an
// error when cfg is invalid ([ErrInvalidConfig]), a client cannot be made,
// preparing sessions or the baseline bucket fails, or ctx ends; in the
// last case the report holds the phases that ran, the one cut short
// marked interrupted.
func Run(ctx context.Context, cfg Config, target Target) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if target.Client == nil {
		return nil, fmt.Errorf("%w: the target has no client", ErrInvalidConfig)
	}
	r := &runner{
		cfg:      cfg,
		target:   target,
		fix:      newFixture(cfg.LoginSessions),
		progress: progress{w: cfg.Progress, interval: cfg.ProgressInterval, rewrite: cfg.ProgressRewrite},
		clients:  map[string]bus.Sessions{},
	}
	defer r.closeClients()
	var err error
	if r.base, err = target.Client(); err != nil {
		return nil, fmt.Errorf("loadgen: client: %w", err)
	}
	rep := &Report{
		Clients: cfg.Clients, Count: cfg.Count, Rate: cfg.Rate,
		Sessions: cfg.Sessions, LoginSessions: cfg.LoginSessions, OtherSessions: cfg.OtherSessions,
		Phases: []PhaseReport{},
	}
	if cfg.Count == 0 {
		rep.DurationSeconds = cfg.Duration.Seconds()
	}
	if cfg.OtherSessions > 0 {
		if err := r.createOthers(ctx, cfg.OtherSessions); err != nil {
			return nil, err
		}
	}
	if target.Baseline != nil {
		if err := r.ensurePool(ctx); err != nil { // the record size is sampled from it
			return nil, err
		}
		if rep.Baseline, err = r.runBaseline(ctx, target.Baseline); err != nil {
			rep.Interrupted = ctx.Err() != nil
			return rep, err
		}
	}
	for _, p := range cfg.Phases {
		tasks, err := r.tasks(ctx, p)
		if err != nil {
			return rep, err
		}
		pr := r.runPhase(ctx, p.Name, tasks)
		if len(p.Ops) == 1 {
			compare(pr.Rows, rep.Baseline)
		}
		rep.Phases = append(rep.Phases, pr)
		if err := ctx.Err(); err != nil {
			rep.Interrupted = true
			return rep, err
		}
	}
	return rep, nil
}

// ensurePool creates the pool unless it exists.
func (r *runner) ensurePool(ctx context.Context) error {
	if r.pooled {
		return nil
	}
	if err := r.createPool(ctx, r.cfg.Sessions); err != nil {
		return err
	}
	r.pooled = true
	return nil
}

// tasks prepares what phase p's operations need and binds each to its
// client.
func (r *runner) tasks(ctx context.Context, p Phase) ([]task, error) {
	tasks := make([]task, len(p.Ops))
	weights := make([]int, len(p.Ops))
	for i, w := range p.Ops {
		weights[i] = w.Weight
	}
	sched := schedule(weights)
	for i, w := range p.Ops {
		o, _ := lookupOp(w.Op) // Validate checked it
		switch o.needs {
		case needPool:
			if err := r.ensurePool(ctx); err != nil {
				return nil, err
			}
		case needVictims:
			if err := r.createVictims(ctx, r.victimsFor(sched, i)); err != nil {
				return nil, err
			}
		}
		c, err := r.client(o)
		if err != nil {
			return nil, err
		}
		tasks[i] = task{name: o.name, class: o.class, weight: w.Weight,
			do: func(ctx context.Context, i uint64) error { return o.do(ctx, c, r.fix, i) }}
	}
	return tasks, nil
}

// victimsFor is how many sessions task t of a phase with schedule sched
// deletes: exactly its slots when the phase's slots are known (a count,
// or a duration at a rate), else Config.DeleteSessions.
func (r *runner) victimsFor(sched []int, t int) int {
	slots := uint64(r.cfg.Count)
	if slots == 0 && r.cfg.Rate > 0 {
		slots = dueSlots(r.cfg.Rate, r.cfg.Duration)
	}
	if slots == 0 {
		return r.cfg.DeleteSessions
	}
	return int(max(slotsOf(sched, t, slots), 1))
}

// client returns the client op runs through.
func (r *runner) client(o op) (bus.Sessions, error) {
	if len(o.clientOptions) == 0 {
		return r.base, nil
	}
	if c, ok := r.clients[o.name]; ok {
		return c, nil
	}
	c, err := r.target.Client(o.clientOptions...)
	if err != nil {
		return nil, fmt.Errorf("loadgen: client for %s: %w", o.name, err)
	}
	if cc, ok := c.(cacheClient); ok && o.cached {
		// Measure the cache answering, not its start: wait for its feed
		// (a cache that never hears it falls through, and that is measured).
		deadline := time.Now().Add(cacheStartTimeout)
		for !cc.CacheStats().Current && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.clients[o.name] = c
	return c, nil
}

// cacheStartTimeout bounds the wait for a cached client's feed.
const cacheStartTimeout = 5 * time.Second

// cacheClient is a client with a session cache.
type cacheClient interface {
	CacheStats() client.CacheStats
	Close()
}

// closeClients stops the caches of the clients ops made.
func (r *runner) closeClients() {
	for _, c := range r.clients {
		if cc, ok := c.(cacheClient); ok {
			cc.Close()
		}
	}
}

// compare sets each row's ratio against the baseline's row of its class.
func compare(rows []Row, b *BaselineReport) {
	if b == nil {
		return
	}
	for i := range rows {
		for _, base := range b.Rows {
			if base.class == rows[i].class && base.OpsPerSec > 0 {
				rows[i].Baseline, rows[i].Ratio = base.Op, rows[i].OpsPerSec/base.OpsPerSec
			}
		}
	}
}
