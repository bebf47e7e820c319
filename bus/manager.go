package bus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/session-bus/session-bus/internal/boundedmap"
	"github.com/session-bus/session-bus/internal/retry"
)

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

// expiry is when s ends if used at now: the idle timeout, capped by the
// absolute lifetime.
func (m *Manager) expiry(s *Session, now time.Time) time.Time {
	e := now.Add(m.idle)
	if m.o.maxLifetime > 0 {
		if limit := s.CreateTime.Add(m.o.maxLifetime); limit.Before(e) {
			return limit
		}
	}
	return e
}

// slide extends s's expiry when a touch is due at now, and says whether it did.
func (m *Manager) slide(s *Session, now time.Time) bool {
	if now.Sub(s.LastAccess) < m.touch {
		return false
	}
	next := m.expiry(s, now)
	if !next.After(s.ExpiresAt) {
		return false // at the lifetime cap: nothing to extend
	}
	s.LastAccess, s.ExpiresAt = now, next
	return true
}

func (m *Manager) checkSize(s *Session) error {
	total := 0
	for k, v := range s.Attributes {
		if err := validateAttrKey(k); err != nil {
			return err
		}
		if len(v) > m.o.maxAttrValueBytes {
			return fmt.Errorf("%w: attribute %q is over %d bytes", ErrTooLarge, k, m.o.maxAttrValueBytes)
		}
		total += len(k) + len(v)
	}
	if total > m.o.maxSessionBytes {
		return fmt.Errorf("%w: attributes total over %d bytes", ErrTooLarge, m.o.maxSessionBytes)
	}
	return nil
}

// CreateSession creates a session for loginID with the user's token and
// returns it, Token included (the only time it is returned). Errors:
// [ErrInvalidInput], [ErrTooLarge], [ErrTokenInUse], [ErrSessionLimit], and
// [ErrConflict] when a DeleteAllSessions of the login overtook the create.
func (m *Manager) CreateSession(ctx context.Context, loginID, token string) (*Session, error) {
	if err := ValidateLoginID(loginID); err != nil {
		return nil, err
	}
	if err := validateToken(token); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	now := m.o.now()
	caller := m.caller(ctx)
	s := &Session{
		SessionID:        uuid.NewString(),
		LoginID:          loginID,
		ServiceID:        caller,
		CreateTime:       now,
		LastAccess:       now,
		Attributes:       map[string]string{},
		TokenFingerprint: TokenFingerprint(m.o.tokenKey, token),
	}
	s.ExpiresAt = m.expiry(s, now)
	var err error
	if m.o.maxSessions > 0 {
		err = m.createCapped(ctx, s)
	} else {
		// The store refuses the create atomically when a DeleteAllSessions
		// of the login began before it (ErrConflict): it fences first and
		// lists after, so one of the two always sees the other.
		if s.Revision, err = m.store.CreateSession(ctx, s, Change{Op: OpCreated, Service: caller}); err != nil {
			err = m.storeErr("create session", err)
		}
	}
	if err != nil {
		return nil, err
	}
	s.Token = token
	return s, nil
}

// createCapped creates s under the per-login cap: claim the login, count
// its sessions, make room (evict) or refuse, then create on the condition
// that the claim still holds. A create that lost its claim to a concurrent
// one counts again, so two creates never both pass on one count, in this
// process or another; a refused create writes nothing and announces nothing.
func (m *Manager) createCapped(ctx context.Context, s *Session) error {
	// Creates of one login queue here within this process, so claims
	// compete only across processes.
	mu := &m.stripes[stripe("login:"+s.LoginID)]
	mu.Lock()
	defer mu.Unlock()
	for attempt := 0; ; attempt++ {
		claim, err := m.store.ClaimLogin(ctx, s.LoginID, s.CreateTime, m.o.fenceTTL)
		if err != nil {
			return m.storeErr("claim login", err)
		}
		live, err := m.SessionsByLogin(ctx, s.LoginID)
		if err != nil {
			return err
		}
		if over := len(live) - m.o.maxSessions + 1; over > 0 {
			if m.o.evict == RefuseNew {
				return fmt.Errorf("%w: login has %d sessions", ErrSessionLimit, len(live))
			}
			for _, old := range live[:over] { // oldest first
				if err := m.store.DeleteSession(ctx, old, Change{Op: OpDeleted, Service: s.ServiceID, Reason: ReasonEvicted}); err != nil {
					return m.storeErr("evict session", err)
				}
			}
		}
		s.Revision, err = m.store.CreateSession(ctx, s, Change{Op: OpCreated, Service: s.ServiceID, Claim: claim})
		if !errors.Is(err, ErrClaimLost) {
			if err != nil {
				return m.storeErr("create session", err)
			}
			return nil
		}
		if attempt+1 >= maxCASAttempts {
			return fmt.Errorf("%w: create session: too many concurrent creates of the login", ErrUnavailable)
		}
		if err := retry.Backoff(ctx, attempt); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

// GetSession returns the session with that id and, at most once per touch
// interval, extends its idle timeout. Errors: [ErrInvalidInput],
// [ErrSessionNotFound].
func (m *Manager) GetSession(ctx context.Context, sessionID string) (*Session, error) {
	if err := ValidateSessionID(sessionID); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	return m.getAndTouch(ctx, sessionID)
}

func (m *Manager) getAndTouch(ctx context.Context, id string) (*Session, error) {
	s, err := m.load(ctx, id)
	if err != nil {
		return nil, err
	}
	m.auditAccess(ctx, s)
	now := m.o.now()
	if now.Sub(s.LastAccess) < m.touch {
		return s, nil // the common case: no touch due, no copy, no write
	}
	next := s.Clone()
	if !m.slide(next, now) {
		return s, nil
	}
	rev, err := m.put(ctx, next, Change{Op: OpRefreshed, Service: m.caller(ctx), Touch: true})
	switch {
	case err == nil:
		next.Revision = rev
		return next, nil
	case errors.Is(err, ErrConflict):
		return s, nil // another writer got there first; it touched or will
	case errors.Is(err, ErrSessionNotFound):
		return nil, ErrSessionNotFound
	default:
		m.log.Warn("touch failed", keySessionID, id, keyErr, err)
		return s, nil
	}
}

// load reads a live session.
func (m *Manager) load(ctx context.Context, id string) (*Session, error) {
	s, err := m.store.GetSession(ctx, id)
	if err != nil {
		return nil, m.storeErr("get session", err)
	}
	if s.expired(m.o.now()) {
		return nil, ErrSessionNotFound
	}
	if err := m.opened(s); err != nil {
		m.log.Error("decrypt session failed", keySessionID, id, keyErr, err)
		return nil, fmt.Errorf("%w: decrypt session", ErrInternal)
	}
	return s, nil
}

// put writes s with compare-and-set on s.Revision, sealing attributes first.
func (m *Manager) put(ctx context.Context, s *Session, c Change) (uint64, error) {
	return m.store.UpdateSession(ctx, m.sealed(s), c)
}

// GetSessionByToken returns the session of a user's token, touching it as
// GetSession does. Errors: [ErrInvalidInput], [ErrSessionNotFound].
func (m *Manager) GetSessionByToken(ctx context.Context, token string) (*Session, error) {
	if err := validateToken(token); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	fp := TokenFingerprint(m.o.tokenKey, token)
	if id, ok := m.tokens.Get(fp); ok {
		s, err := m.getAndTouch(ctx, id)
		if err == nil && s.TokenFingerprint == fp {
			return s, nil
		}
		m.tokens.Delete(fp) // the session ended; the token may be another's now
	}
	id, err := m.store.SessionIDByToken(ctx, fp)
	if err != nil {
		return nil, m.storeErr("look up token", err)
	}
	m.tokens.Put(fp, id)
	return m.getAndTouch(ctx, id)
}

// UpdateSession replaces the attributes of s if s.Revision is still the
// session's latest (compare-and-set) and returns the new version. It never
// brings back a deleted session and refuses to change LoginID. Errors:
// [ErrInvalidInput], [ErrTooLarge], [ErrConflict], [ErrSessionNotFound].
func (m *Manager) UpdateSession(ctx context.Context, s *Session) (*Session, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil session", ErrInvalidInput)
	}
	if err := ValidateSessionID(s.SessionID); err != nil {
		return nil, err
	}
	if err := m.checkSize(s); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	cur, err := m.load(ctx, s.SessionID)
	if err != nil {
		return nil, err
	}
	if s.LoginID != "" && s.LoginID != cur.LoginID {
		return nil, fmt.Errorf("%w: login_id cannot change", ErrInvalidInput)
	}
	if cur.Revision != s.Revision {
		return nil, fmt.Errorf("%w: session changed since revision %d", ErrConflict, s.Revision)
	}
	next := cur.Clone()
	next.Attributes = cloneAttrs(s.Attributes)
	c := Change{Op: OpUpdated, Service: m.caller(ctx), Keys: changedKeys(cur.Attributes, next.Attributes)}
	c.Touch = m.slide(next, m.o.now())
	rev, err := m.put(ctx, next, c)
	if err != nil {
		return nil, m.storeErr("update session", err)
	}
	next.Revision = rev
	return next, nil
}

func cloneAttrs(a map[string]string) map[string]string {
	if a == nil {
		return map[string]string{}
	}
	return maps.Clone(a)
}

// changedKeys lists the keys whose value differs between a and b, sorted.
func changedKeys(a, b map[string]string) []string {
	var keys []string
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			keys = append(keys, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// RefreshSession extends the idle timeout of a session now, whatever the
// touch interval, and returns it. Errors: [ErrInvalidInput], [ErrSessionNotFound].
func (m *Manager) RefreshSession(ctx context.Context, sessionID string) (*Session, error) {
	return m.mutate(ctx, sessionID, func(s *Session, now time.Time) (Change, error) {
		s.LastAccess, s.ExpiresAt = now, m.expiry(s, now)
		return Change{Op: OpRefreshed, Touch: true}, nil
	})
}

func stripe(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() % 256
}

// SetAttribute sets one attribute of a session; concurrent writers never
// lose each other's writes. Errors: [ErrInvalidInput], [ErrTooLarge],
// [ErrSessionNotFound].
func (m *Manager) SetAttribute(ctx context.Context, sessionID, key, value string) error {
	if err := validateAttrKey(key); err != nil {
		return err
	}
	if len(value) > m.o.maxAttrValueBytes {
		return fmt.Errorf("%w: attribute value is over %d bytes", ErrTooLarge, m.o.maxAttrValueBytes)
	}
	_, err := m.mutate(ctx, sessionID, func(s *Session, _ time.Time) (Change, error) {
		if old, ok := s.Attributes[key]; ok && old == value {
			return Change{}, errNoChange
		}
		s.Attributes[key] = value
		return Change{Op: OpUpdated, Keys: []string{key}}, nil
	})
	return err
}

// GetAttribute returns one attribute of a session and whether it is set,
// touching the session as GetSession does. Errors: [ErrInvalidInput],
// [ErrSessionNotFound].
func (m *Manager) GetAttribute(ctx context.Context, sessionID, key string) (string, bool, error) {
	if err := validateAttrKey(key); err != nil {
		return "", false, err
	}
	s, err := m.GetSession(ctx, sessionID)
	if err != nil {
		return "", false, err
	}
	v, ok := s.Attributes[key]
	return v, ok, nil
}

// RemoveAttribute removes one attribute; removing one that is not set is
// not an error. Errors: [ErrInvalidInput], [ErrSessionNotFound].
func (m *Manager) RemoveAttribute(ctx context.Context, sessionID, key string) error {
	if err := validateAttrKey(key); err != nil {
		return err
	}
	_, err := m.mutate(ctx, sessionID, func(s *Session, _ time.Time) (Change, error) {
		if _, ok := s.Attributes[key]; !ok {
			return Change{}, errNoChange
		}
		delete(s.Attributes, key)
		return Change{Op: OpUpdated, Keys: []string{key}}, nil
	})
	return err
}

// DeleteSession ends a session (reason "logout"). Deleting a session that
// does not exist is not an error. Errors: [ErrInvalidInput].
func (m *Manager) DeleteSession(ctx context.Context, sessionID string) error {
	if err := ValidateSessionID(sessionID); err != nil {
		return err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	return m.deleteByID(ctx, sessionID, ReasonLogout)
}

func (m *Manager) deleteByID(ctx context.Context, id, reason string) error {
	s, err := m.store.GetSession(ctx, id)
	if errors.Is(err, ErrSessionNotFound) {
		return nil
	}
	if err != nil {
		return m.storeErr("get session", err)
	}
	if err := m.store.DeleteSession(ctx, s, Change{Op: OpDeleted, Service: m.caller(ctx), Reason: reason}); err != nil {
		return m.storeErr("delete session", err)
	}
	return nil
}

// DeleteSessionByToken ends the session of a user's token; an unknown token
// is not an error. Errors: [ErrInvalidInput].
func (m *Manager) DeleteSessionByToken(ctx context.Context, token string) error {
	if err := validateToken(token); err != nil {
		return err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	id, err := m.store.SessionIDByToken(ctx, TokenFingerprint(m.o.tokenKey, token))
	if errors.Is(err, ErrSessionNotFound) {
		return nil
	}
	if err != nil {
		return m.storeErr("look up token", err)
	}
	return m.deleteByID(ctx, id, ReasonLogout)
}

// SessionsByLogin returns the live sessions of a login, oldest first,
// without touching them (monitoring is not use). Errors: [ErrInvalidInput].
func (m *Manager) SessionsByLogin(ctx context.Context, loginID string) ([]*Session, error) {
	if err := ValidateLoginID(loginID); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	ids, err := m.store.SessionIDsByLogin(ctx, loginID)
	if err != nil {
		return nil, m.storeErr("list sessions", err)
	}
	out := make([]*Session, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = m.load(ctx, id)
		}()
	}
	wg.Wait()
	live := out[:0]
	for i, s := range out {
		switch {
		case errs[i] == nil:
			live = append(live, s)
		case !errors.Is(errs[i], ErrSessionNotFound):
			return nil, errs[i]
		}
	}
	slices.SortFunc(live, func(a, b *Session) int { return a.CreateTime.Compare(b.CreateTime) })
	return live, nil
}

// DeleteAllSessions ends every session of a login (reason "logout_all")
// and returns how many it ended. A create racing it either completes
// before it and is deleted, or fails with [ErrConflict]: once it returns,
// no session created before the call is left. Errors: [ErrInvalidInput].
func (m *Manager) DeleteAllSessions(ctx context.Context, loginID string) (int, error) {
	if err := ValidateLoginID(loginID); err != nil {
		return 0, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	if err := m.store.SetLoginFence(ctx, loginID, m.o.now(), m.o.fenceTTL); err != nil {
		return 0, m.storeErr("set fence", err)
	}
	ids, err := m.store.SessionIDsByLogin(ctx, loginID)
	if err != nil {
		return 0, m.storeErr("list sessions", err)
	}
	n := 0
	for _, id := range ids {
		s, err := m.store.GetSession(ctx, id)
		if errors.Is(err, ErrSessionNotFound) {
			continue
		}
		if err != nil {
			return n, m.storeErr("get session", err)
		}
		if err := m.store.DeleteSession(ctx, s, Change{Op: OpDeleted, Service: m.caller(ctx), Reason: ReasonLogoutAll}); err != nil {
			return n, m.storeErr("delete session", err)
		}
		n++
	}
	return n, nil
}

// storeErr passes on errors the API names and wraps the rest as
// unavailable or internal, naming the operation.
func (m *Manager) storeErr(op string, err error) error {
	for _, known := range []error{ErrSessionNotFound, ErrConflict, ErrTokenInUse, ErrTooLarge,
		ErrInvalidInput, ErrServiceExists, ErrServiceNotFound, ErrUnavailable} {
		if errors.Is(err, known) {
			return err
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	m.log.Error("store failed", "op", op, keyErr, err)
	return fmt.Errorf("%w: %s", ErrInternal, op)
}
