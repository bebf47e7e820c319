package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/internal/retry"
)

// Handler handles one event. For a group ([Listen]) an error means "retry":
// the event is redelivered after a backoff.
type Handler func(ctx context.Context, ev Event) error

// Listener delivers events to a [Handler] until [Listener.Close]. Calls of
// its handler never overlap: one instance handles one event at a time, in
// stream order, so events of one session arrive in order, one at a time.
type Listener struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	err       error // set before done closes
}

// Done is closed when the listener has stopped: after Close, or when it
// failed for good ([Listener.Err] says why). A group's durable consumer
// deleted under it is made again instead.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Err returns why the listener stopped on its own, once Done is closed;
// nil after Close.
func (l *Listener) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Close stops the listener and waits for a running handler call to return
// (its ctx is canceled). A group event received but not handled is handed
// back at once for another instance. Safe to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	return nil
}

// Listen joins the durable listener group named group (created when
// missing): each event is handled by one instance of the group, and
// acknowledged when the handler returns nil. A failed or timed-out event
// is redelivered with backoff, so delivery is at least once: de-duplicate
// by [Event.ID]. Events published while every instance was down are
// delivered when one comes back (for as long as the stream keeps them).
//
// By default the group handles one event at a time (max ack pending 1),
// which keeps every session's events in order across instances and
// redeliveries; [WithMaxAckPending] trades that for throughput.
//
// ctx bounds the setup only. Errors: [ErrNoStream] until a relay has
// created the events stream, [ErrInvalidConfig]. Listen panics on a nil
// handler.
func Listen(ctx context.Context, js jetstream.JetStream, group string, handler Handler, opts ...ListenOption) (*Listener, error) {
	if handler == nil {
		panic("events: nil handler")
	}
	o, err := applyListenOptions(opts)
	if err != nil {
		return nil, err
	}
	if !validToken(group) {
		return nil, fmt.Errorf("%w: group name %q", ErrInvalidConfig, group)
	}
	stream, err := openStream(ctx, js, o.stream)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        group,
		Description:    "session-bus listener group",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.ackWait,
		MaxAckPending:  o.maxAckPending,
		MaxDeliver:     o.maxDeliver,
		FilterSubjects: o.filters(),
		DeliverPolicy:  o.deliver,
	}
	if o.deliver == jetstream.DeliverByStartTimePolicy {
		cfg.OptStartTime = &o.startTime
	}
	// The start position of an existing group cannot change: keep it.
	if c, err := stream.Consumer(ctx, group); err == nil {
		old := c.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = old.DeliverPolicy, old.OptStartTime, old.OptStartSeq
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("events: open group %q: %w", group, err)
	}
	// The server hands out at most maxAckPending unacknowledged events;
	// the pull itself asks for more, so it stays open between them. A pull
	// of one message at a time stalled for good after relay failovers
	// (seen in TestFault_KillBusUnderLoad: consumer with no waiting pull,
	// client blocked in Next; nats-server issue 4736 reports the same with
	// PullMaxMessages(1)).
	pull := jetstream.PullMaxMessages(max(o.maxAckPending, minPullBatch))
	opened := time.Now()
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: open group %q: %w", group, err)
	}
	it, err := cons.Messages(pull)
	if err != nil {
		return nil, fmt.Errorf("events: open group %q: %w", group, err)
	}
	log := o.logger.With("component", "events.listener", keyGroup, group)
	g := &groupRun{o: o, handler: handler, log: log}
	// A group outlives its durable consumer: deleted under it (by an
	// operator, or by a peer of the same account), it is made again,
	// starting after the last event this instance settled (or, if none,
	// where the group started), so the events stored meanwhile are
	// delivered, at least once as always. Another instance may have made
	// it again first: then that one is used.
	reopen := func(ctx context.Context, cause error) (jetstream.MessagesContext, error) {
		if !errors.Is(cause, jetstream.ErrConsumerDeleted) {
			return nil, cause
		}
		again := cfg
		again.OptStartTime, again.OptStartSeq = nil, 0
		switch last := g.settled.Load(); {
		case last > 0:
			again.DeliverPolicy, again.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
		case cfg.DeliverPolicy == jetstream.DeliverNewPolicy:
			again.DeliverPolicy, again.OptStartTime = jetstream.DeliverByStartTimePolicy, &opened
		default:
			again.DeliverPolicy, again.OptStartTime = cfg.DeliverPolicy, cfg.OptStartTime
		}
		for attempt := range maxReopenAttempts {
			cons, err := stream.Consumer(ctx, group)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				cons, err = stream.CreateConsumer(ctx, again)
			}
			if err == nil {
				var it jetstream.MessagesContext
				if it, err = cons.Messages(pull); err == nil {
					log.Warn("group consumer was deleted; made again", "start_seq", again.OptStartSeq)
					return it, nil
				}
			}
			log.Warn("group consumer was deleted; making it again failed", "attempt", attempt+1, keyErr, err)
			if serr := retry.Sleep(ctx, o.nakDelay(uint64(attempt+1))); serr != nil {
				return nil, serr
			}
		}
		return nil, fmt.Errorf("%w (made again %d times in vain)", cause, maxReopenAttempts)
	}
	return start(it, (jetstream.MessagesContext).Drain, reopen, g.handle), nil
}

// maxReopenAttempts bounds the tries to make a deleted group consumer
// again (with the listener's backoff between them) before the listener
// stops with the error.
const maxReopenAttempts = 20

// minPullBatch is the smallest pull a group listener keeps open.
const minPullBatch = 64

// Broadcast delivers every event to this instance: each instance that
// calls it gets all of them, through an ordered consumer that lives as
// long as the listener. A handler error is logged and the event is not
// redelivered. Use it for local caches; use [Listen] for work that must
// be done once.
//
// ctx bounds the setup only. Errors: [ErrNoStream], [ErrInvalidConfig].
// Broadcast panics on a nil handler.
func Broadcast(ctx context.Context, js jetstream.JetStream, handler Handler, opts ...ListenOption) (*Listener, error) {
	if handler == nil {
		panic("events: nil handler")
	}
	o, err := applyListenOptions(opts)
	if err != nil {
		return nil, err
	}
	stream, err := openStream(ctx, js, o.stream)
	if err != nil {
		return nil, err
	}
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: o.filters(), DeliverPolicy: o.deliver}
	if o.deliver == jetstream.DeliverByStartTimePolicy {
		ccfg.OptStartTime = &o.startTime
	}
	cons, err := stream.OrderedConsumer(ctx, ccfg)
	if err != nil {
		return nil, fmt.Errorf("events: broadcast: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("events: broadcast: %w", err)
	}
	log := o.logger.With("component", "events.broadcast")
	return start(it, (jetstream.MessagesContext).Stop, nil, func(ctx context.Context, msg jetstream.Msg, _ bool) {
		ev, err := Decode(msg.Data())
		if err != nil {
			log.Warn("skipping bad event", keySubject, msg.Subject(), keyErr, err)
			return
		}
		if o.login != "" && ev.LoginID != o.login {
			return
		}
		if err := handler(ctx, ev); err != nil && ctx.Err() == nil {
			log.Warn("handler failed", keyEventID, ev.ID, keySessionID, ev.SessionID, keyErr, err)
		}
	}), nil
}

// start runs handle on every message of it until Close; stop ends an
// iterator. When the iterator fails, reopen (if not nil) may return a new
// one to go on with (it gets the failure and the listener's context);
// else the listener stops with the failure. handle is told when the
// listener is closing.
func start(it jetstream.MessagesContext, stop func(jetstream.MessagesContext),
	reopen func(context.Context, error) (jetstream.MessagesContext, error),
	handle func(ctx context.Context, msg jetstream.Msg, closing bool)) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{cancel: cancel, done: make(chan struct{})}
	var mu sync.Mutex // guards cur: the stopper stops the iterator in use
	cur := it
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		select {
		case <-ctx.Done():
		case <-l.done:
		}
		mu.Lock()
		stop(cur)
		mu.Unlock()
	}()
	go func() {
		defer l.wg.Done()
		defer close(l.done)
		for {
			msg, err := it.Next()
			if err == nil {
				handle(ctx, msg, ctx.Err() != nil)
				continue
			}
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if reopen != nil {
				next, rerr := reopen(ctx, err)
				if ctx.Err() != nil {
					if rerr == nil {
						stop(next)
					}
					return // closed while reopening
				}
				if rerr == nil {
					mu.Lock()
					it, cur = next, next
					if ctx.Err() != nil { // closed meanwhile: the stopper may be done
						stop(next)
					}
					mu.Unlock()
					continue
				}
				err = rerr
			}
			l.err = fmt.Errorf("events: listener stopped: %w", err)
			return
		}
	}()
	return l
}

// groupRun handles the messages of a group listener.
type groupRun struct {
	o       listenOptions
	handler Handler
	log     *slog.Logger
	settled atomic.Uint64 // the stream sequence of the last event acked or terminated here
}

// settle records msg's stream sequence as settled.
func (g *groupRun) settle(msg jetstream.Msg) {
	if md, err := msg.Metadata(); err == nil && md.Sequence.Stream > g.settled.Load() {
		g.settled.Store(md.Sequence.Stream)
	}
}

func (g *groupRun) handle(ctx context.Context, msg jetstream.Msg, closing bool) {
	if closing {
		_ = msg.Nak() // received while closing: let another instance have it now
		return
	}
	ev, err := Decode(msg.Data())
	if err != nil {
		g.log.Error("dropping bad event", keySubject, msg.Subject(), keyErr, err)
		_ = msg.Term()
		g.settle(msg)
		return
	}
	if g.o.login != "" && ev.LoginID != g.o.login {
		_ = msg.Ack()
		g.settle(msg)
		return
	}
	stop := keepInProgress(msg, g.o.ackWait/2)
	err = g.handler(ctx, ev)
	stop()
	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			g.log.Warn("ack failed", keyEventID, ev.ID, keyErr, aerr)
		}
		g.settle(msg)
		return
	}
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	var delivered uint64 = 1
	if md, mdErr := msg.Metadata(); mdErr == nil {
		delivered = md.NumDelivered
	}
	g.log.Warn("handler failed, will retry", keyEventID, ev.ID, keySessionID, ev.SessionID, keyErr, err)
	_ = msg.NakWithDelay(g.o.nakDelay(delivered))
}

// keepInProgress tells the server every period that msg is still being
// handled, until stop is called.
func keepInProgress(msg jetstream.Msg, period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
