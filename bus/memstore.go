package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a [Store] in process memory, for tests and single-process
// use, with a [ChangeFeed]. Expired entries are invisible at once and freed
// by a sweep that rides on writes and feed reads, so the store needs no
// goroutine of its own.
type MemoryStore struct {
	mu        sync.Mutex
	now       func() time.Time
	rev       uint64
	sessions  map[string]*Session            // by session id
	tokens    map[string]string              // fingerprint -> session id
	logins    map[string]map[string]struct{} // login id -> session ids
	fences    map[string]memFence
	services  map[string]ServiceRecord
	lastSweep time.Time
	feed      memFeed
}

// memFence is a login's fence and claim (see Store.ClaimLogin).
type memFence struct {
	at, until time.Time
	claim     uint64
}

var (
	_ Store      = (*MemoryStore)(nil)
	_ ChangeFeed = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		now:      time.Now,
		sessions: map[string]*Session{},
		tokens:   map[string]string{},
		logins:   map[string]map[string]struct{}{},
		fences:   map[string]memFence{},
		services: map[string]ServiceRecord{},
		feed:     memFeed{limit: defaultOutboxLimit, wake: make(chan struct{})},
	}
}

// live returns the unexpired session id, dropping it when it has expired.
// Callers hold mu.
func (st *MemoryStore) live(id string, now time.Time) (*Session, bool) {
	s, ok := st.sessions[id]
	if !ok {
		return nil, false
	}
	if s.expired(now) {
		st.expire(s, now)
		return nil, false
	}
	return s, true
}

// expire drops s, whose time ran out, and records the expiry.
func (st *MemoryStore) expire(s *Session, now time.Time) {
	st.drop(s)
	st.rev++
	st.record(ChangeRecord{Seq: st.rev, Time: now, Op: OpExpired, SessionID: s.SessionID, LoginID: s.LoginID})
}

func (st *MemoryStore) drop(s *Session) {
	delete(st.sessions, s.SessionID)
	if st.tokens[s.TokenFingerprint] == s.SessionID {
		delete(st.tokens, s.TokenFingerprint)
	}
	if ids := st.logins[s.LoginID]; ids != nil {
		delete(ids, s.SessionID)
		if len(ids) == 0 {
			delete(st.logins, s.LoginID)
		}
	}
}

// sweep frees expired entries at most once a second. Callers hold mu.
func (st *MemoryStore) sweep(now time.Time) {
	if now.Sub(st.lastSweep) < time.Second {
		return
	}
	st.lastSweep = now
	st.expireDue(now)
	for id, f := range st.fences {
		if !now.Before(f.until) {
			delete(st.fences, id)
		}
	}
}

// CreateSession implements [Store].
func (st *MemoryStore) CreateSession(_ context.Context, s *Session, ch Change) (uint64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	st.sweep(now)
	if err := st.admit(); err != nil {
		return 0, fmt.Errorf("create session: %w", err)
	}
	if _, ok := st.live(s.SessionID, now); ok {
		return 0, fmt.Errorf("create session %s: %w", s.SessionID, ErrConflict)
	}
	if f, ok := st.fences[s.LoginID]; ok && now.Before(f.until) && !s.CreateTime.After(f.at) {
		return 0, fmt.Errorf("create session: %w: all sessions of the login were deleted meanwhile", ErrConflict)
	}
	if f := st.fences[s.LoginID]; ch.Claim != 0 && (f.claim != ch.Claim || !now.Before(f.until)) {
		return 0, fmt.Errorf("create session: %w", ErrClaimLost)
	}
	if id, ok := st.tokens[s.TokenFingerprint]; ok {
		if _, alive := st.live(id, now); alive {
			return 0, fmt.Errorf("create session: %w", ErrTokenInUse)
		}
	}
	st.rev++
	c := s.Clone()
	c.Token = ""
	c.Revision = st.rev
	st.sessions[c.SessionID] = c
	st.tokens[c.TokenFingerprint] = c.SessionID
	if st.logins[c.LoginID] == nil {
		st.logins[c.LoginID] = map[string]struct{}{}
	}
	st.logins[c.LoginID][c.SessionID] = struct{}{}
	st.record(changeRecord(c, ch, now))
	return c.Revision, nil
}

// GetSession implements [Store].
func (st *MemoryStore) GetSession(_ context.Context, id string) (*Session, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.live(id, st.now())
	if !ok {
		return nil, ErrSessionNotFound
	}
	return s.Clone(), nil
}

// SessionIDByToken implements [Store].
func (st *MemoryStore) SessionIDByToken(_ context.Context, fingerprint string) (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	id, ok := st.tokens[fingerprint]
	if !ok {
		return "", ErrSessionNotFound
	}
	if _, alive := st.live(id, st.now()); !alive {
		return "", ErrSessionNotFound
	}
	return id, nil
}

// UpdateSession implements [Store].
func (st *MemoryStore) UpdateSession(_ context.Context, s *Session, ch Change) (uint64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	st.sweep(now)
	if err := st.admit(); err != nil {
		return 0, fmt.Errorf("update session: %w", err)
	}
	cur, ok := st.live(s.SessionID, now)
	if !ok {
		return 0, ErrSessionNotFound
	}
	if cur.Revision != s.Revision {
		return 0, fmt.Errorf("update session %s: %w", s.SessionID, ErrConflict)
	}
	if !s.ExpiresAt.After(now) {
		st.expire(cur, now)
		return 0, ErrSessionNotFound
	}
	st.rev++
	c := s.Clone()
	c.Token = ""
	c.LoginID, c.TokenFingerprint, c.CreateTime = cur.LoginID, cur.TokenFingerprint, cur.CreateTime
	c.Revision = st.rev
	st.sessions[c.SessionID] = c
	st.record(changeRecord(c, ch, now))
	return c.Revision, nil
}

// DeleteSession implements [Store].
func (st *MemoryStore) DeleteSession(_ context.Context, s *Session, ch Change) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	// A delete is never held back (see ChangeFeed): a logout must always
	// take effect; the outbox may pass its limit by the deletes.
	if cur, ok := st.live(s.SessionID, now); ok {
		st.drop(cur)
		st.rev++
		st.record(changeRecord(&Session{SessionID: cur.SessionID, LoginID: cur.LoginID, Revision: st.rev}, ch, now))
	}
	return nil
}

// SessionIDsByLogin implements [Store].
func (st *MemoryStore) SessionIDsByLogin(_ context.Context, loginID string) ([]string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	ids := make([]string, 0, len(st.logins[loginID]))
	for id := range st.logins[loginID] {
		if _, ok := st.live(id, now); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// SetLoginFence implements [Store].
func (st *MemoryStore) SetLoginFence(_ context.Context, loginID string, at time.Time, ttl time.Duration) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rev++
	st.fences[loginID] = memFence{at: at, until: st.now().Add(ttl), claim: st.rev}
	return nil
}

// ClaimLogin implements [Store].
func (st *MemoryStore) ClaimLogin(_ context.Context, loginID string, createTime time.Time, ttl time.Duration) (uint64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	f := st.fences[loginID]
	if !now.Before(f.until) {
		f = memFence{} // an expired fence no longer refuses anything
	}
	if !f.at.IsZero() && !createTime.After(f.at) {
		return 0, fmt.Errorf("claim login: %w: all sessions of the login were deleted meanwhile", ErrConflict)
	}
	st.rev++
	f.claim = st.rev
	if until := now.Add(ttl); until.After(f.until) {
		f.until = until
	}
	st.fences[loginID] = f
	return f.claim, nil
}

// CreateService implements [Store].
func (st *MemoryStore) CreateService(_ context.Context, r ServiceRecord) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.services[r.Credential.ServiceID]; ok {
		return ErrServiceExists
	}
	st.rev++
	r.Revision = st.rev
	r.Credential.Permissions = slices.Clone(r.Credential.Permissions)
	st.services[r.Credential.ServiceID] = r
	return nil
}

// UpdateService implements [Store].
func (st *MemoryStore) UpdateService(_ context.Context, r ServiceRecord) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	cur, ok := st.services[r.Credential.ServiceID]
	if !ok {
		return ErrServiceNotFound
	}
	if cur.Revision != r.Revision {
		return fmt.Errorf("update service %s: %w", r.Credential.ServiceID, ErrConflict)
	}
	st.rev++
	r.Revision = st.rev
	r.Credential.Permissions = slices.Clone(r.Credential.Permissions)
	st.services[r.Credential.ServiceID] = r
	return nil
}

// GetService implements [Store].
func (st *MemoryStore) GetService(_ context.Context, serviceID string) (ServiceRecord, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.services[serviceID]
	if !ok {
		return ServiceRecord{}, ErrServiceNotFound
	}
	r.Credential.Permissions = slices.Clone(r.Credential.Permissions)
	return r, nil
}

// DeleteService implements [Store].
func (st *MemoryStore) DeleteService(_ context.Context, serviceID string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.services, serviceID)
	return nil
}

// ListServices implements [Store].
func (st *MemoryStore) ListServices(_ context.Context) ([]ServiceRecord, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]ServiceRecord, 0, len(st.services))
	for _, r := range st.services {
		r.Credential.Permissions = slices.Clone(r.Credential.Permissions)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ServiceRecord) int {
		if a.Credential.ServiceID < b.Credential.ServiceID {
			return -1
		}
		return 1
	})
	return out, nil
}
