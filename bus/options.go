package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Defaults, set here and only here.
const (
	// DefaultRequestTimeout bounds a call whose ctx has no deadline.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxAttrValueBytes caps one attribute value.
	DefaultMaxAttrValueBytes = 64 * 1024
	// DefaultMaxSessionBytes caps a session's attributes in total.
	DefaultMaxSessionBytes = 256 * 1024
	// DefaultFenceTTL is how long a DeleteAllSessions fence outlives the call:
	// longer than any create can be in flight.
	DefaultFenceTTL = 30 * time.Second
)

// EvictPolicy says what CreateSession does when a login is at its maximum
// number of sessions.
type EvictPolicy int

const (
	// EvictOldest deletes the login's oldest sessions (reason "evicted").
	EvictOldest EvictPolicy = iota
	// RefuseNew fails the create with ErrSessionLimit.
	RefuseNew
)

type options struct {
	touchInterval     time.Duration // 0: derived from the idle timeout
	maxLifetime       time.Duration // 0: no cap
	maxSessions       int           // 0: no cap
	evict             EvictPolicy
	requestTimeout    time.Duration
	maxAttrValueBytes int
	maxSessionBytes   int
	fenceTTL          time.Duration
	tokenKey          []byte
	logger            *slog.Logger
	now               func() time.Time
	serviceAudit      func(context.Context, ServiceEvent)
	accessAudit       func(context.Context, AccessEvent)
	cipher            *attrCipher
	accounts          Accounts // nil: services log in with secrets
	cache             ReadCache
	notify            func(ids ...string)
}

// Option configures a [Manager].
type Option func(*options) error

// WithTouchInterval sets how often a use may extend a session's idle
// timeout: a read writes at most once per interval. Default: a tenth of the
// idle timeout, at least 1 s (TTLs have whole-second resolution).
func WithTouchInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("%w: touch interval must not be negative", ErrInvalidConfig)
		}
		o.touchInterval = d
		return nil
	}
}

// WithMaxLifetime caps a session's life from its creation, however often
// it is used. Default: no cap.
func WithMaxLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || (d > 0 && d < time.Second) {
			return fmt.Errorf("%w: max lifetime must be 0 or at least 1s", ErrInvalidConfig)
		}
		o.maxLifetime = d
		return nil
	}
}

// WithMaxSessions caps the sessions of one login (sa-token's max login
// count). Past it, policy evicts the oldest or refuses. Default: no cap.
func WithMaxSessions(n int, policy EvictPolicy) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: max sessions must not be negative", ErrInvalidConfig)
		}
		o.maxSessions, o.evict = n, policy
		return nil
	}
}

// WithRequestTimeout bounds calls whose ctx has no deadline. Default 5 s.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout must be positive", ErrInvalidConfig)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithLimits sets the largest attribute value and the largest total of a
// session's attributes, in bytes. Defaults 64 KiB and 256 KiB.
func WithLimits(maxAttrValue, maxSession int) Option {
	return func(o *options) error {
		if maxAttrValue <= 0 || maxSession < maxAttrValue {
			return fmt.Errorf("%w: limits must be positive and session >= attribute", ErrInvalidConfig)
		}
		o.maxAttrValueBytes, o.maxSessionBytes = maxAttrValue, maxSession
		return nil
	}
}

// WithTokenKey sets the HMAC key token fingerprints are made with. Every bus
// instance on one store must use the same key. Default: empty.
func WithTokenKey(key []byte) Option {
	return func(o *options) error {
		o.tokenKey = append([]byte(nil), key...)
		return nil
	}
}

// WithFenceTTL sets how long a DeleteAllSessions fence is kept. Default 30 s.
func WithFenceTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("%w: fence TTL must be at least 1s", ErrInvalidConfig)
		}
		o.fenceTTL = d
		return nil
	}
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}
