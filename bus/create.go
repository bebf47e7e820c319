package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/google/uuid"
)

// CreateOptions are what a create sets besides the login and token. They
// are exported so that a client can carry them over the wire; callers use
// the [CreateOption] functions.
type CreateOptions struct {
	// Attributes are the session's first attributes, written with the
	// session itself: one write and one event instead of one per key.
	Attributes map[string]string
}

// CreateOption sets one of the [CreateOptions] of a create.
type CreateOption func(*CreateOptions)

// WithAttributes gives a new session its first attributes (SEED.md's best
// practice: role, department and device right at login). They obey the
// same limits as SetAttribute; the map is copied.
func WithAttributes(attrs map[string]string) CreateOption {
	return func(o *CreateOptions) {
		if o.Attributes == nil {
			o.Attributes = make(map[string]string, len(attrs))
		}
		maps.Copy(o.Attributes, attrs)
	}
}

// NewCreateOptions applies opts in order.
func NewCreateOptions(opts ...CreateOption) CreateOptions {
	var o CreateOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// CreateSession creates a session for loginID with the user's token and
// returns it, Token included (the only time it is returned). Errors:
// [ErrInvalidInput], [ErrTooLarge], [ErrTokenInUse], [ErrSessionLimit], and
// [ErrConflict] when a DeleteAllSessions of the login overtook the create.
func (m *Manager) CreateSession(ctx context.Context, loginID, token string, opts ...CreateOption) (*Session, error) {
	if err := ValidateLoginID(loginID); err != nil {
		return nil, err
	}
	if err := validateToken(token); err != nil {
		return nil, err
	}
	o := NewCreateOptions(opts...)
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
		Attributes:       cloneAttrs(o.Attributes),
		TokenFingerprint: TokenFingerprint(m.o.tokenKey, token),
	}
	if err := m.checkSize(s); err != nil {
		return nil, err
	}
	s.ExpiresAt = m.expiry(s, now)
	created := Change{Op: OpCreated, Service: caller, Keys: changedKeys(nil, s.Attributes)}
	var err error
	if m.o.maxSessions > 0 {
		err = m.createCapped(ctx, s, created)
	} else {
		// The store refuses the create atomically when a DeleteAllSessions
		// of the login began before it (ErrConflict): it fences first and
		// lists after, so one of the two always sees the other.
		if s.Revision, err = m.store.CreateSession(ctx, m.sealed(s), created); err != nil {
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
func (m *Manager) createCapped(ctx context.Context, s *Session, created Change) error {
	// Creates of one login queue here within this process, so claims
	// compete only across processes.
	mu := &m.stripes[stripe("login:"+s.LoginID)]
	mu.Lock()
	defer mu.Unlock()
	err := retryCAS(ctx, ErrClaimLost, func() error {
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
		created.Claim = claim
		s.Revision, err = m.store.CreateSession(ctx, m.sealed(s), created)
		if err != nil && !errors.Is(err, ErrClaimLost) {
			return m.storeErr("create session", err)
		}
		return err
	})
	if errors.Is(err, ErrClaimLost) {
		return fmt.Errorf("%w: create session: too many concurrent creates of the login", ErrUnavailable)
	}
	return err
}
