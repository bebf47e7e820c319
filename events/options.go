package events

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ListenOption configures [Listen], [Broadcast] and [Tail].
type ListenOption func(*listenOptions) error

type listenOptions struct {
	stream        string
	types         []Type
	login         string
	deliver       jetstream.DeliverPolicy
	startTime     time.Time
	ackWait       time.Duration
	maxAckPending int
	maxDeliver    int
	backoffMin    time.Duration
	backoffMax    time.Duration
	logger        *slog.Logger
}

func defaultListenOptions() listenOptions {
	return listenOptions{
		stream:        DefaultStreamConfig().Name,
		deliver:       jetstream.DeliverNewPolicy,
		ackWait:       30 * time.Second,
		maxAckPending: 1,
		maxDeliver:    -1,
		backoffMin:    100 * time.Millisecond,
		backoffMax:    10 * time.Second,
		logger:        slog.Default(),
	}
}

// WithStream names the events stream. Default "SESSION_EVENTS".
func WithStream(name string) ListenOption {
	return func(o *listenOptions) error {
		if !validToken(name) {
			return fmt.Errorf("%w: stream name %q", ErrInvalidConfig, name)
		}
		o.stream = name
		return nil
	}
}

// WithTypes delivers only events of these types (a server-side subject
// filter). Default: every type.
func WithTypes(types ...Type) ListenOption {
	return func(o *listenOptions) error {
		for _, t := range types {
			if !t.valid() {
				return fmt.Errorf("%w: unknown event type %q", ErrInvalidConfig, t)
			}
		}
		o.types = append(o.types, types...)
		return nil
	}
}

// WithLogin delivers only events of one login. Subjects do not carry the
// login, so this filter runs in the client: the others are received and
// acknowledged unseen.
func WithLogin(loginID string) ListenOption {
	return func(o *listenOptions) error {
		if loginID == "" {
			return fmt.Errorf("%w: empty login id", ErrInvalidConfig)
		}
		o.login = loginID
		return nil
	}
}

// WithStartTime starts with the events stored at or after t. For a group,
// it applies when the group is first created; afterwards the group resumes
// where it stopped. Default: events published from now on.
func WithStartTime(t time.Time) ListenOption {
	return func(o *listenOptions) error {
		if t.IsZero() {
			return fmt.Errorf("%w: zero start time", ErrInvalidConfig)
		}
		o.deliver, o.startTime = jetstream.DeliverByStartTimePolicy, t
		return nil
	}
}

// WithDeliverAll starts with the oldest event the stream holds (see
// [StreamConfig.MaxAge]). Like [WithStartTime], for a group it applies on
// creation only.
func WithDeliverAll() ListenOption {
	return func(o *listenOptions) error {
		o.deliver = jetstream.DeliverAllPolicy
		return nil
	}
}

// WithAckWait is how long a group waits for a handler before handing the
// event to another instance; a running handler extends it every half
// period. Default 30 s.
func WithAckWait(d time.Duration) ListenOption {
	return func(o *listenOptions) error {
		if d < time.Second {
			return fmt.Errorf("%w: ack wait must be at least 1s", ErrInvalidConfig)
		}
		o.ackWait = d
		return nil
	}
}

// WithMaxAckPending lets a group handle up to n events at once across its
// instances. Default 1, which keeps the group's events in stream order (so
// in order per session); n > 1 trades that order for throughput: an event
// being retried no longer holds back the ones after it.
func WithMaxAckPending(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max ack pending must be positive", ErrInvalidConfig)
		}
		o.maxAckPending = n
		return nil
	}
}

// WithMaxDeliver gives up on an event after n deliveries. Default: never
// (with the default max ack pending of 1, a handler that always fails
// stops its group).
func WithMaxDeliver(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max deliver must be positive", ErrInvalidConfig)
		}
		o.maxDeliver = n
		return nil
	}
}

// WithBackoff sets the redelivery delay after a handler error: first, then
// doubling up to max. Default 100 ms up to 10 s.
func WithBackoff(first, max time.Duration) ListenOption {
	return func(o *listenOptions) error {
		if first <= 0 || max < first {
			return fmt.Errorf("%w: backoff needs 0 < first <= max", ErrInvalidConfig)
		}
		o.backoffMin, o.backoffMax = first, max
		return nil
	}
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) ListenOption {
	return func(o *listenOptions) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}

func applyListenOptions(opts []ListenOption) (listenOptions, error) {
	o := defaultListenOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o *listenOptions) filters() []string {
	if len(o.types) == 0 {
		return []string{SubjectAll}
	}
	fs := make([]string, 0, len(o.types))
	seen := map[Type]bool{}
	for _, t := range o.types {
		if !seen[t] {
			seen[t] = true
			fs = append(fs, TypeFilter(t))
		}
	}
	return fs
}

func (o *listenOptions) nakDelay(delivered uint64) time.Duration {
	d := o.backoffMin
	for i := uint64(1); i < delivered && d < o.backoffMax; i++ {
		d *= 2
	}
	return min(d, o.backoffMax)
}
