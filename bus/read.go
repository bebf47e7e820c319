package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Reads return live sessions only, and slide the idle timeout of the
// session they read at most once per touch interval (see ttl.go), so that
// reads stay reads.

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
	s, err := m.loadForRead(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.touched(ctx, s)
}

// touched audits a read of s and slides its idle timeout when a touch is
// due, returning the session as the read should see it.
func (m *Manager) touched(ctx context.Context, s *Session) (*Session, error) {
	id := s.SessionID
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
	case errors.Is(err, ErrEventsBehind):
		// The session has many undelivered changes: the read still
		// serves; the store says why on every write it holds back.
		m.log.Debug("touch held back", keySessionID, id, keyErr, err)
		return s, nil
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
	errs := forEach(ids, func(i int, id string) (err error) {
		out[i], err = m.loadForRead(ctx, id)
		return err
	})
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

// TouchSessions is a read of each session for its side effect: at most
// once per touch interval, it extends the idle timeout, as GetSession
// does. A cache that served the sessions from memory sends it, so that
// sessions used only through the cache do not expire. It returns the ids
// of the sessions that no longer exist. Errors: [ErrInvalidInput] for a
// bad id or more than [MaxTouchBatch] ids.
func (m *Manager) TouchSessions(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) > MaxTouchBatch {
		return nil, fmt.Errorf("%w: at most %d sessions per touch", ErrInvalidInput, MaxTouchBatch)
	}
	for _, id := range ids {
		if err := ValidateSessionID(id); err != nil {
			return nil, err
		}
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	// From the store, not the read cache: a touch is how a client cache
	// learns of a session ended by a write whose notice it missed.
	errs := forEach(ids, func(_ int, id string) error {
		s, err := m.load(ctx, id)
		if err == nil {
			_, err = m.touched(ctx, s)
		}
		return err
	})
	missing := []string{}
	for i, err := range errs {
		switch {
		case errors.Is(err, ErrSessionNotFound):
			if m.o.cache != nil {
				m.o.cache.Invalidate(ids[i])
			}
			missing = append(missing, ids[i])
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// forEach runs f on every id, eight at a time (a store round trip each),
// and returns each one's error by index.
func forEach(ids []string, f func(i int, id string) error) []error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i, id)
		}()
	}
	wg.Wait()
	return errs
}
