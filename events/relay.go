package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RelayConfig configures a [Relay].
type RelayConfig struct {
	// Bucket is the sessions KV bucket whose change stream is relayed.
	// Default "sessions" (kvstore.DefaultConfig's).
	Bucket string
	// Stream is the events stream, created when missing.
	Stream StreamConfig
	// LeaseBucket holds the lease that makes one relay active. Default
	// "session-bus-relay".
	LeaseBucket string
	// LeaseTTL is how long a dead active relay holds the lease before a
	// standby takes over: the worst-case delay of events on failover.
	// Default 3 s; at least 1 s.
	LeaseTTL time.Duration
	// Logger, narrowed to component=events.relay. Default slog.Default().
	Logger *slog.Logger
}

// DefaultRelayConfig returns the defaults stated on each [RelayConfig] field.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		Bucket:      "sessions",
		Stream:      DefaultStreamConfig(),
		LeaseBucket: "session-bus-relay",
		LeaseTTL:    3 * time.Second,
	}
}

func (c RelayConfig) validate() error {
	switch {
	case !validToken(c.Bucket):
		return fmt.Errorf("%w: bucket name %q", ErrInvalidConfig, c.Bucket)
	case !validToken(c.LeaseBucket):
		return fmt.Errorf("%w: lease bucket name %q", ErrInvalidConfig, c.LeaseBucket)
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("%w: lease TTL must be at least 1s", ErrInvalidConfig)
	}
	return c.Stream.validate()
}

// Relay announces the changes of the sessions bucket on the events stream:
// it reads the bucket's stream and publishes one [Event] per change, in
// stream order, each with Nats-Msg-Id set to its [Event.ID]. Run one in
// every bus instance: one at a time is active (it holds a lease), the
// others stand by and take over, resuming after the last event stored.
// See the package doc for why each change is announced once and in order.
type Relay struct {
	js     jetstream.JetStream
	cfg    RelayConfig
	log    *slog.Logger
	events jetstream.Stream
	lease  *lease

	mu       sync.Mutex
	started  bool
	closed   bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	leader   bool
	closeErr error
}

// NewRelay returns a relay for cfg; [Relay.Start] starts it. Errors:
// [ErrInvalidConfig].
func NewRelay(js jetstream.JetStream, cfg RelayConfig) (*Relay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Relay{js: js, cfg: cfg, log: log.With("component", "events.relay", keyStream, cfg.Stream.Name)}, nil
}

// Start creates the events stream and the lease bucket when missing and
// starts relaying in the background until [Relay.Close]. ctx bounds the
// setup only. Errors: [ErrClosed] after Close, or when started twice.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.started {
		return fmt.Errorf("%w: relay already started or closed", ErrClosed)
	}
	events, err := EnsureStream(ctx, r.js, r.cfg.Stream)
	if err != nil {
		return err
	}
	l, err := openLease(ctx, r.js, r.cfg.LeaseBucket, r.cfg.Stream.Name, r.cfg.LeaseTTL, r.cfg.Stream.Replicas)
	if err != nil {
		return err
	}
	r.events, r.lease, r.started = events, l, true
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(runCtx)
	}()
	r.log.Info("relay started", "bucket", r.cfg.Bucket)
	return nil
}

// Close stops the relay and waits for it; an active relay hands its lease
// over. Safe to call more than once.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.closeErr
	}
	r.closed = true
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		r.wg.Wait()
		r.log.Info("relay stopped")
	}
	return nil
}

// Active reports whether this relay currently holds the lease and relays.
func (r *Relay) Active() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *Relay) setActive(v bool) {
	r.mu.Lock()
	r.leader = v
	r.mu.Unlock()
}

// run alternates between standing by and relaying until ctx ends.
func (r *Relay) run(ctx context.Context) {
	defer func() {
		releaseCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.lease.release(releaseCtx)
	}()
	tick := time.NewTicker(r.cfg.LeaseTTL / 4)
	defer tick.Stop()
	failures := 0
	for {
		ok, err := r.lease.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("lease acquire failed", keyErr, err)
		}
		if ok {
			r.setActive(true)
			err := r.lead(ctx)
			r.setActive(false)
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("relay stepped down", keyErr, err)
			failures++
			if err := sleep(ctx, backoff(failures)); err != nil {
				return
			}
			continue
		}
		failures = 0
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lead relays while the lease holds; it returns why it stopped.
func (r *Relay) lead(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.keepLease(ctx, cancel)
	}()
	err := r.relay(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func (r *Relay) keepLease(ctx context.Context, stop context.CancelCauseFunc) {
	tick := time.NewTicker(r.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL/3)
		err := r.lease.renew(rctx)
		cancel()
		if errors.Is(err, errLeaseLost) {
			r.lease.rev = 0
			stop(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("lease renew failed", keyErr, err)
		}
	}
}

// relay reads the bucket's stream from the checkpoint on and publishes
// each derived event before reading the next.
func (r *Relay) relay(ctx context.Context) error {
	ccfg, err := r.checkpoint(ctx)
	if err != nil {
		return err
	}
	cons, err := r.js.OrderedConsumer(ctx, "KV_"+r.cfg.Bucket, ccfg)
	if err != nil {
		return fmt.Errorf("events: read change stream: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("events: read change stream: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stopped := make(chan struct{})
	defer close(stopped)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		it.Stop()
	}()
	var seen lastSeen
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("events: read change stream: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue // not a stream message
		}
		c := change{subject: msg.Subject(), seq: md.Sequence.Stream, time: md.Timestamp, header: msg.Headers(), data: msg.Data()}
		ev, ok := derive(r.cfg.Bucket, c)
		if !ok {
			continue
		}
		// Changes replaced before we read them are in the change log; a
		// session not seen since start has all of its log announced again
		// (the events stream drops those it already has by message id).
		for _, missed := range logged(r.cfg.Bucket, c, ev, seen.get(ev.SessionID)) {
			if err := r.publish(ctx, missed, c.seq-1); err != nil {
				return err
			}
		}
		if err := r.publish(ctx, ev, c.seq); err != nil {
			return err
		}
		seen.put(ev.SessionID, c.seq)
	}
}

// lastSeen remembers, per session, the last change the relay announced, so
// a change log is not announced again with every write. Bounded: when full
// it starts over, which costs only re-announcements the stream drops.
type lastSeen struct {
	m map[string]uint64
}

const maxSeen = 100_000

func (l *lastSeen) get(id string) uint64 { return l.m[id] }

func (l *lastSeen) put(id string, seq uint64) {
	if l.m == nil || len(l.m) >= maxSeen {
		l.m = make(map[string]uint64)
	}
	l.m[id] = seq
}

// checkpoint says where to resume: after the change of the last event
// stored, or, when the stream holds none, from the time of its last message
// (or its creation), so that a first start does not announce old changes.
func (r *Relay) checkpoint(ctx context.Context) (jetstream.OrderedConsumerConfig, error) {
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: KVSubjectFilters(r.cfg.Bucket)}
	info, err := r.events.Info(ctx)
	if err != nil {
		return ccfg, fmt.Errorf("events: read checkpoint: %w", err)
	}
	since := info.Created
	if info.State.LastSeq > 0 {
		m, err := r.events.GetMsg(ctx, info.State.LastSeq)
		switch {
		case err == nil:
			if seq, perr := strconv.ParseUint(m.Header.Get(HeaderSourceSeq), 10, 64); perr == nil {
				ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
				return ccfg, nil
			}
			since = m.Time
		case errors.Is(err, jetstream.ErrMsgNotFound):
			if info.State.LastTime.After(since) {
				since = info.State.LastTime
			}
		default:
			return ccfg, fmt.Errorf("events: read checkpoint: %w", err)
		}
	}
	ccfg.DeliverPolicy, ccfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	return ccfg, nil
}

// publish stores ev on the events stream, retrying until it is stored (or
// found a duplicate) or ctx ends: the next change must not be announced
// before this one. source is the change-stream sequence up to which every
// change is announced once ev is: where a relay taking over resumes.
func (r *Relay) publish(ctx context.Context, ev Event, source uint64) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events: encode event: %w", err)
	}
	for attempt := 1; ; attempt++ {
		m := nats.NewMsg(SessionSubject(ev))
		m.Data = data
		m.Header.Set(HeaderSourceSeq, strconv.FormatUint(source, 10))
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.js.PublishMsg(pctx, m, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(r.cfg.Stream.Name))
		cancel()
		if err == nil {
			r.log.Debug("event published", keyEventID, ev.ID, keySessionID, ev.SessionID)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("publish event failed", keyEventID, ev.ID, keySessionID, ev.SessionID, keyErr, err)
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// backoff returns the delay before retry attempt n (from 1): 50 ms
// doubling, capped at 2 s.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n-1, 6)
	return min(d, 2*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
