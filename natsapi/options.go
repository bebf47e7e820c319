package natsapi

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/session-bus/session-bus/bus"
)

// Defaults, set here and only here.
const (
	// DefaultMaxInFlight bounds the requests one Server handles at once.
	DefaultMaxInFlight = 256
	// DefaultMaxRequestBytes bounds a request body: 1 MiB, the NATS
	// server's default max_payload.
	DefaultMaxRequestBytes = 1 << 20
)

type options struct {
	maxInFlight     int
	maxPerCaller    int // 0: half of maxInFlight
	maxRequestBytes int
	requestTimeout  time.Duration
	logger          *slog.Logger
	callers         Callers // nil: the subject's caller token is the service id
}

// Option configures a [Server].
type Option func(*options) error

// WithMaxInFlight bounds the requests handled at once; more are refused
// with 503. Default [DefaultMaxInFlight].
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight must be at least 1", bus.ErrInvalidConfig)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithMaxInFlightPerCaller bounds the requests of one caller (the service
// named by the subject) handled at once, so one service's burst cannot
// take every slot and make other services' requests fail; more are
// refused with 503. Default: half of max in flight (at least 1).
func WithMaxInFlightPerCaller(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight per caller must be at least 1", bus.ErrInvalidConfig)
		}
		o.maxPerCaller = n
		return nil
	}
}

// WithMaxRequestBytes bounds a request body; larger ones get 413.
// Default [DefaultMaxRequestBytes].
func WithMaxRequestBytes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max request bytes must be positive", bus.ErrInvalidConfig)
		}
		o.maxRequestBytes = n
		return nil
	}
}

// WithRequestTimeout bounds the handling of one request, and the waits
// of [New] and [Server.Close] for the NATS server. Default
// bus.DefaultRequestTimeout.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout must be positive", bus.ErrInvalidConfig)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithCallers makes the server take each request's caller from the
// account key the NATS server put in the subject (the importing account,
// see auth.Accounts), mapped to its service by c; a key c does not know is
// refused with 401. It also makes the server answer only replies the NATS
// server mapped back to the requesting account (subjects starting
// [MappedReplyPrefix]); a request with any other reply subject is dropped
// unanswered, since the server would otherwise publish, with its own
// rights, to a subject its caller chose.
func WithCallers(c Callers) Option {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("%w: nil callers", bus.ErrInvalidConfig)
		}
		o.callers = c
		return nil
	}
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", bus.ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}
