package bus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/session-bus/session-bus/internal/boundedmap"
	"github.com/session-bus/session-bus/internal/retry"
)

// The Manager's methods live by idea: creating sessions (create.go),
// reading them (read.go), changing them (write.go, group-committed by
// mutate.go), ending them (delete.go), how long they live (ttl.go), and
// the service registry (services.go). This file holds what they share.

// maxCASAttempts bounds the compare-and-set retries of one write; the ctx
// deadline bounds them too.
const maxCASAttempts = 100

// Manager is the session manager: sa-token's DistributedSessionManager in Go
// idiom. Create one per process with [New]; it is safe for concurrent use.
type Manager struct {
	store     Store
	serviceID string
	idle      time.Duration
	touch     time.Duration
	o         options
	log       *slog.Logger
	// stripes serialise writes to one session (and capped creates of one
	// login) within this process, so compare-and-set retries are only paid
	// for writers in other processes.
	stripes [256]sync.Mutex
	// queued holds the writes waiting for a stripe (see mutate).
	queued  [256]writeQueue
	limiter verifyLimiter
	// failures counts failed verifications per id and minute, for logs
	// and audit records that count instead of repeating.
	failures failureCounts
	// tokens remembers token fingerprint -> session id: a user's token
	// maps to one session for the session's whole life, so a hit saves
	// the index read. A stale entry is caught by the fingerprint check.
	tokens *boundedmap.Map[string, string]
	// verified remembers successful secret checks (see checkSecret),
	// keyed under verifiedKey, which never leaves this process.
	verified    *boundedmap.Map[[32]byte, struct{}]
	verifiedKey [32]byte
}

// maxVerified bounds the memory of successful secret checks.
const maxVerified = 4096

// maxCachedTokens bounds the token -> session cache.
const maxCachedTokens = 65536

// New returns a Manager on store acting as serviceID, whose sessions end
// after idleTimeout without use (at least 1 s). It fails with
// [ErrInvalidConfig] on bad arguments or options.
func New(store Store, serviceID string, idleTimeout time.Duration, opts ...Option) (*Manager, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidConfig)
	}
	if err := ValidateServiceID(serviceID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if idleTimeout < time.Second {
		return nil, fmt.Errorf("%w: idle timeout must be at least 1s", ErrInvalidConfig)
	}
	o := options{
		requestTimeout:    DefaultRequestTimeout,
		maxAttrValueBytes: DefaultMaxAttrValueBytes,
		maxSessionBytes:   DefaultMaxSessionBytes,
		fenceTTL:          DefaultFenceTTL,
		logger:            slog.Default(),
		now:               time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	touch := o.touchInterval
	if touch == 0 {
		touch = max(idleTimeout/10, time.Second)
	}
	m := &Manager{
		store:     store,
		serviceID: serviceID,
		idle:      idleTimeout,
		touch:     touch,
		o:         o,
		log:       o.logger.With("component", "bus"),
		tokens:    boundedmap.New[string, string](maxCachedTokens),
		verified:  boundedmap.New[[32]byte, struct{}](maxVerified),
	}
	_, _ = rand.Read(m.verifiedKey[:]) // crypto/rand.Read never fails on supported platforms
	if o.cache != nil || o.notify != nil {
		m.store = notifyingStore{Store: store, m: m}
	}
	return m, nil
}

// ServiceID returns the id the Manager acts as when the ctx names none.
func (m *Manager) ServiceID() string { return m.serviceID }

// IdleTimeout returns the idle timeout sessions are created with.
func (m *Manager) IdleTimeout() time.Duration { return m.idle }

func (m *Manager) caller(ctx context.Context) string {
	if id, ok := ServiceFromContext(ctx); ok {
		return id
	}
	return m.serviceID
}

// withTimeout applies the request timeout when ctx has no deadline.
func (m *Manager) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, m.o.requestTimeout)
}

// stripe returns the index of the stripe lock that guards id.
func stripe(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() % 256
}

// retryCAS runs try, a compare-and-set write that fails with lost when
// another writer came first, until it lands or fails otherwise, at most
// maxCASAttempts times with jittered backoff between tries
// (retry.CompareAndSet). try returns errors that carry a wire code, or
// lost. retryCAS returns try's last error, which wraps lost when every try
// lost, or [ErrUnavailable] when ctx ended while it waited.
func retryCAS(ctx context.Context, lost error, try func() error) error {
	err := retry.CompareAndSet(ctx, lost, maxCASAttempts, try)
	if err == nil || errors.Is(err, lost) || hasCode(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err) // only the wait returns ctx's error
}

// hasCode reports whether err wraps a sentinel of the code table, so that
// it reaches callers as it is.
func hasCode(err error) bool {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return true
		}
	}
	return false
}

// storeErr passes on errors that carry a wire code (see [CodeOf]), so it
// may be applied to its own results, and wraps the rest as unavailable
// (a ctx that ended) or internal (logged here), naming the operation.
func (m *Manager) storeErr(op string, err error) error {
	if hasCode(err) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	m.log.Error("store failed", "op", op, keyErr, err)
	return fmt.Errorf("%w: %s", ErrInternal, op)
}
