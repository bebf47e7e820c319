package bus

import (
	"context"
	"errors"
)

// Deleting what is already gone is not an error: a logout is done once
// the session is gone, whoever ended it.

// DeleteSession ends a session (reason "logout"). Deleting a session that
// does not exist is not an error. Errors: [ErrInvalidInput].
func (m *Manager) DeleteSession(ctx context.Context, sessionID string) error {
	if err := ValidateSessionID(sessionID); err != nil {
		return err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	_, err := m.deleteByID(ctx, sessionID, ReasonLogout)
	return err
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
	_, err = m.deleteByID(ctx, id, ReasonLogout)
	return err
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
		deleted, err := m.deleteByID(ctx, id, ReasonLogoutAll)
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// deleteByID deletes the session id, if it exists, for reason, and
// reports whether it did.
func (m *Manager) deleteByID(ctx context.Context, id, reason string) (bool, error) {
	s, err := m.store.GetSession(ctx, id)
	if errors.Is(err, ErrSessionNotFound) {
		// Gone already, maybe by a write whose outcome its caller never
		// learned: caches hear of it once more.
		m.changed(id, nil)
		return false, nil
	}
	if err != nil {
		return false, m.storeErr("get session", err)
	}
	if err := m.store.DeleteSession(ctx, s, Change{Op: OpDeleted, Service: m.caller(ctx), Reason: reason}); err != nil {
		return false, m.storeErr("delete session", err)
	}
	return true, nil
}
