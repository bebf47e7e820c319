package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/retry"
)

// RelayConfig configures a [Relay].
type RelayConfig struct {
	// Bucket names the store in event ids ("kv-<bucket>-<seq>"): the
	// sessions bucket's name for kvstore. Default "sessions".
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
	// MaxInFlight bounds the events published and not yet acknowledged,
	// in batches of up to 1,024 (at least three batches).
	// Default 8192.
	MaxInFlight int
	// Logger, narrowed to component=events.relay. Default slog.Default().
	Logger *slog.Logger
	// Notify, when set, is told the session ids of every change the
	// active relay reads, before their events are published: the
	// backstop of the session caches' notices (sessioncache), which
	// covers writers that announce nothing themselves (a library Manager,
	// an older bus process) within the relay's lag.
	Notify func(ids ...string)
}

// DefaultRelayConfig returns the defaults stated on each [RelayConfig] field.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		Bucket:      "sessions",
		Stream:      DefaultStreamConfig(),
		LeaseBucket: "session-bus-relay",
		LeaseTTL:    3 * time.Second,
		MaxInFlight: 8192,
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
	case c.MaxInFlight < 3*feedBatchHint || c.MaxInFlight > 1<<20:
		return fmt.Errorf("%w: max in flight must be %d..%d", ErrInvalidConfig, 3*feedBatchHint, 1<<20)
	}
	return c.Stream.validate()
}

// Relay announces a store's changes on the events stream: it follows the
// store's [bus.ChangeFeed] and publishes one [Event] per change, in the
// feed's order, each with Nats-Msg-Id set to its [Event.ID], and records in
// the store how far it has delivered. Run one in every bus instance: one at
// a time is active (it holds a lease), the others stand by and take over,
// resuming where the store says the last one's deliveries stopped. See the
// package doc for why each change is announced once and in order.
type Relay struct {
	feed   bus.ChangeFeed
	js     jetstream.JetStream
	pub    jetstream.JetStream // js with room for MaxInFlight async publishes
	cfg    RelayConfig
	log    *slog.Logger
	events jetstream.Stream
	lease  *lease

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	leader  bool
}

// NewRelay returns a relay of feed's changes, publishing through js; a
// kvstore.Store is such a feed. [Relay.Start] starts it. Errors:
// [ErrInvalidConfig].
func NewRelay(feed bus.ChangeFeed, js jetstream.JetStream, cfg RelayConfig) (*Relay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if feed == nil {
		return nil, fmt.Errorf("%w: no change feed", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	pub, err := withAsyncRoom(js, cfg.MaxInFlight)
	if err != nil {
		return nil, err
	}
	return &Relay{feed: feed, js: js, pub: pub, cfg: cfg, log: log.With("component", "events.relay", keyStream, cfg.Stream.Name)}, nil
}

// withAsyncRoom returns a JetStream context on js's connection and API
// that lets n async publishes await acknowledgement (nats.go's default is
// 4,000, and a publish past it stalls), each for at most publishTimeout (by
// default an acknowledgement lost with its server is awaited forever).
func withAsyncRoom(js jetstream.JetStream, n int) (jetstream.JetStream, error) {
	opts := []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncMaxPending(n + feedBatchHint), // room for the batch being published
		jetstream.WithPublishAsyncTimeout(publishTimeout),
	}
	o := js.Options()
	var pub jetstream.JetStream
	var err error
	switch {
	case o.APIPrefix != "" && o.APIPrefix != jetstream.DefaultAPIPrefix:
		pub, err = jetstream.NewWithAPIPrefix(js.Conn(), o.APIPrefix, opts...)
	case o.Domain != "":
		pub, err = jetstream.NewWithDomain(js.Conn(), o.Domain, opts...)
	default:
		pub, err = jetstream.New(js.Conn(), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("events: relay publisher: %w", err)
	}
	return pub, nil
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
	if _, err := r.resumePoint(ctx, events); err != nil {
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
	r.log.Info("relay started", "source", r.cfg.Bucket)
	return nil
}

// Close stops the relay and waits for it; an active relay hands its lease
// over. Safe to call more than once.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
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
			began := time.Now()
			err := r.lead(ctx)
			r.setActive(false)
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("relay stepped down; it resumes from the last delivery", keyErr, err)
			// Hand the lease back, so that this relay or a standby takes
			// over after the backoff rather than after the lease's TTL.
			releaseCtx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
			r.lease.release(releaseCtx)
			cancel()
			if time.Since(began) > time.Minute {
				failures = 0 // it ran well for a while: start the backoff over
			}
			failures++
			if err := retry.Sleep(ctx, backoff(failures)); err != nil {
				return
			}
			continue
		}
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

// relay follows the store's change feed from where the last relay's
// deliveries stopped and publishes one event per change, pipelined: up to
// MaxInFlight events await their acknowledgement at once. Each event
// carries its id (Nats-Msg-Id, so the stream drops one it already holds)
// and the id of the event before it (Nats-Expected-Last-Msg-Id, so the
// stream refuses it unless that one was stored last): events are stored in
// the feed's order, and a refused or lost one stops every later one. The
// committer records a batch as delivered once its last event is
// acknowledged; on any failure the relay starts over from there.
func (r *Relay) relay(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	delivered, err := r.resumePoint(ctx, r.events)
	if err != nil {
		return err
	}
	stored, err := r.storedSince(ctx, delivered.Mark)
	if err != nil {
		return err
	}
	cur, err := r.feed.Follow(ctx, delivered.Position)
	if err != nil {
		return fmt.Errorf("events: follow changes: %w", err)
	}
	defer cur.Stop()
	// Batches in flight: those queued, the one the committer awaits, the
	// one being published.
	acked := make(chan sentBatch, r.cfg.MaxInFlight/feedBatchHint-2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.commit(ctx, acked, cancel)
	}()
	defer wg.Wait()
	defer close(acked)
	lastID := "" // the id of the last event published in this run
	hand := func(b sentBatch) error {
		select {
		case acked <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for {
		b, err := cur.Next(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return fmt.Errorf("events: read changes: %w", err)
		}
		r.notify(b.Changes)
		var last jetstream.PubAckFuture
		for i, c := range b.Changes {
			if i > 0 && i%feedBatchHint == 0 {
				// A batch longer than that (change logs): hand over what
				// is published, delivering nothing new yet, so the
				// publishes in flight stay within MaxInFlight.
				if err := hand(sentBatch{Delivery: delivered, last: last}); err != nil {
					return err
				}
				last = nil // a future's acknowledgement is received once, by the committer
			}
			if c.Repeat {
				// Look it up only once every event before it is stored:
				// one still in flight would not be found.
				flushed := make(chan struct{})
				if err := hand(sentBatch{Delivery: delivered, last: last, acked: flushed}); err != nil {
					return err
				}
				select {
				case <-flushed:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
				last = nil
				done, err := r.announced(ctx, c)
				if err != nil {
					return err
				}
				if done {
					continue
				}
			}
			ev := r.event(c)
			if _, ok := stored[ev.ID]; ok {
				continue // published after the last delivery was recorded
			}
			f, err := r.publishAsync(ev, lastID)
			if err != nil {
				return err
			}
			lastID, last = ev.ID, f
		}
		delivered = bus.Delivery{Position: b.Through, AsOf: b.AsOf, Mark: delivered.Mark}
		if err := hand(sentBatch{Delivery: delivered, last: last}); err != nil {
			return err
		}
	}
}

// feedBatchHint is the most changes of a batch, to size the queue of
// batches awaiting acknowledgement by MaxInFlight.
const feedBatchHint = bus.MaxChangeBatch

// sentBatch is a batch whose events are published: delivered once its last
// event (nil when it had none) is acknowledged.
type sentBatch struct {
	bus.Delivery
	last  jetstream.PubAckFuture
	acked chan struct{} // closed once last is acknowledged; may be nil
}

// commit waits for each sent batch's acknowledgement in order and records
// the latest delivered batch in the store, at most every commitEvery while
// more batches wait. A failed event ends the run (stop). When the run ends
// otherwise (Close, a lost lease), it still waits up to drainWait for the
// events in flight and records them, so that a relay starting later, even
// after the duplicate window, does not announce them again.
func (r *Relay) commit(ctx context.Context, sent <-chan sentBatch, stop context.CancelCauseFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(drainWait)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-wctx.Done():
			}
		case <-wctx.Done():
		}
	}()
	var pending *bus.Delivery
	var last time.Time
	record := func() {
		if err := r.feed.Delivered(wctx, *pending); err != nil {
			r.log.Warn("record delivery failed", keyErr, err)
			return
		}
		pending, last = nil, time.Now()
	}
	var mark uint64 = math.MaxUint64 // unknown until an acknowledgement: keep the recorded one
	for b := range sent {
		if b.last != nil {
			select {
			case ack := <-b.last.Ok():
				mark = ack.Sequence
			case err := <-b.last.Err():
				stop(fmt.Errorf("events: publish event: %w", err))
				if pending != nil {
					r.recordFinal(*pending)
				}
				return
			case <-wctx.Done():
				if pending != nil {
					r.recordFinal(*pending)
				}
				return
			}
		}
		if b.acked != nil {
			close(b.acked)
		}
		if mark != math.MaxUint64 {
			b.Mark = mark
		}
		pending = &b.Delivery
		if len(sent) > 0 && time.Since(last) < commitEvery {
			continue // more acknowledged soon: record those
		}
		record()
	}
	if pending != nil {
		r.recordFinal(*pending)
	}
}

// recordFinal records a delivery when the run's context is over: what was
// acknowledged is delivered, and a successor need not announce it again.
func (r *Relay) recordFinal(d bus.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.feed.Delivered(ctx, d); err != nil {
		r.log.Warn("record delivery failed", keyErr, err)
	}
}

// publishTimeout bounds the wait for one event's acknowledgement; past it
// the relay starts over from its last delivery.
const publishTimeout = 10 * time.Second

// drainWait bounds how long a stopping relay waits for its events in
// flight to be acknowledged.
const drainWait = 2 * time.Second

// commitEvery bounds how long a delivered batch waits to be recorded while
// the relay is busy: writers start a session's change log afresh once its
// last change is recorded as delivered, so this bounds their logs too.
const commitEvery = 5 * time.Millisecond

// publishAsync publishes ev after the event with id prev (none when empty).
func (r *Relay) publishAsync(ev Event, prev string) (jetstream.PubAckFuture, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("events: encode event: %w", err)
	}
	m := nats.NewMsg(SessionSubject(ev))
	m.Data = data
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(r.cfg.Stream.Name)}
	if prev != "" {
		opts = append(opts, jetstream.WithExpectLastMsgID(prev))
	}
	f, err := r.pub.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, fmt.Errorf("events: publish event: %w", err)
	}
	return f, nil
}

// storedSince returns the ids of the events stored on the events stream
// after sequence mark: what a relay published after it last recorded a
// delivery (it was killed, or another relay overlapped it). The run skips
// them, so it publishes no duplicate, which would break its chain of
// expected ids, and announces nothing twice however long ago they were
// published.
func (r *Relay) storedSince(ctx context.Context, mark uint64) (map[string]struct{}, error) {
	info, err := r.events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("events: read events stream: %w", err)
	}
	stored := map[string]struct{}{}
	if info.State.LastSeq <= mark {
		return stored, nil
	}
	cons, err := r.js.OrderedConsumer(ctx, r.cfg.Stream.Name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   mark + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("events: read events stream: %w", err)
	}
	last := info.State.LastSeq
	for {
		batch, err := cons.FetchNoWait(feedBatchHint)
		if err != nil {
			return nil, fmt.Errorf("events: read events stream: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
				stored[id] = struct{}{}
			}
			md, err := m.Metadata()
			if err == nil && md.Sequence.Stream >= last {
				return stored, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("events: read events stream: %w", err)
		}
		if n == 0 {
			return stored, nil // the rest aged out meanwhile
		}
	}
}

// announced reports whether the events stream holds c's event already: its
// session's last event is at c's revision or later. Only changes a cursor
// marks Repeat are looked up (after a restart, at most the logs of sessions
// that changed while no relay delivered).
func (r *Relay) announced(ctx context.Context, c bus.ChangeRecord) (bool, error) {
	m, err := r.events.GetLastMsgForSubject(ctx, SessionFilter(c.SessionID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("events: look up announced event: %w", err)
	}
	ev, err := Decode(m.Data)
	if err != nil {
		return false, nil //nolint:nilerr // not one of ours: look no further
	}
	return ev.Revision >= c.Seq, nil
}

// event maps a change to its event.
func (r *Relay) event(c bus.ChangeRecord) Event {
	return Event{
		ID: EventID(r.cfg.Bucket, c.Seq), Type: Type("session." + string(c.Op)), SessionID: c.SessionID, LoginID: c.LoginID,
		ServiceID: c.ServiceID, Revision: c.Seq, Reason: c.Reason, Keys: c.Keys, Time: c.Time,
	}
}

// EventID returns the stable id of the event of change seq of the store
// named source: "kv-<source>-<seq>".
func EventID(source string, seq uint64) string {
	return "kv-" + source + "-" + strconv.FormatUint(seq, 10)
}

// resumePoint is where a run reads on from: the store's last recorded
// delivery. A store no relay has delivered from yet starts at its head (old
// changes are not announced), or, when a version that kept its checkpoint in
// the events stream relayed it, after the last event that version stored;
// that start is recorded create-only, so relays starting at once agree.
// Start calls it, so that every change after Start returns is announced.
func (r *Relay) resumePoint(ctx context.Context, events jetstream.Stream) (bus.Delivery, error) {
	d, ok, err := r.feed.LastDelivered(ctx)
	if err != nil {
		return d, fmt.Errorf("events: read delivery: %w", err)
	}
	if ok {
		return d, nil
	}
	pos, ok, err := legacyCheckpoint(ctx, events, r.cfg.Bucket)
	if err != nil {
		return d, err
	}
	if !ok {
		if pos, err = r.feed.Head(ctx); err != nil {
			return d, fmt.Errorf("events: read head: %w", err)
		}
	}
	info, err := events.Info(ctx)
	if err != nil {
		return d, fmt.Errorf("events: read events stream: %w", err)
	}
	if d, err = r.feed.StartDelivery(ctx, bus.Delivery{Position: pos, AsOf: time.Now(), Mark: info.State.LastSeq}); err != nil {
		return d, fmt.Errorf("events: record delivery: %w", err)
	}
	return d, nil
}

// legacyCheckpoint reads the checkpoint of relays before the change feed:
// the HeaderSourceSeq of the last event, when that event is one of ours
// (its message id names this store).
func legacyCheckpoint(ctx context.Context, events jetstream.Stream, bucket string) (uint64, bool, error) {
	info, err := events.Info(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("events: read checkpoint: %w", err)
	}
	if info.State.LastSeq == 0 {
		return 0, false, nil
	}
	m, err := events.GetMsg(ctx, info.State.LastSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("events: read checkpoint: %w", err)
	}
	if !strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), "kv-"+bucket+"-") {
		return 0, false, nil
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSourceSeq), 10, 64)
	return seq, err == nil, nil
}

// backoff returns the delay before a relay that stepped down tries again
// (n from 1): 50 ms doubling, capped at 2 s.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n-1, 6)
	return min(d, 2*time.Second)
}

// notify tells the caches of the sessions that changes touch, each once.
func (r *Relay) notify(changes []bus.ChangeRecord) {
	if r.cfg.Notify == nil || len(changes) == 0 {
		return
	}
	ids := make([]string, 0, len(changes))
	seen := make(map[string]struct{}, len(changes))
	for _, c := range changes {
		if _, ok := seen[c.SessionID]; !ok {
			seen[c.SessionID] = struct{}{}
			ids = append(ids, c.SessionID)
		}
	}
	for chunk := range slices.Chunk(ids, 256) { // notices stay small
		r.cfg.Notify(chunk...)
	}
}
