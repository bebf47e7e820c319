package bus

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Every write is compare-and-set on the session's revision. UpdateSession
// carries its caller's revision to the store; the others apply a change to
// the latest version and retry on conflict (mutate).

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

// RefreshSession extends the idle timeout of a session now, whatever the
// touch interval, and returns it. Errors: [ErrInvalidInput], [ErrSessionNotFound].
func (m *Manager) RefreshSession(ctx context.Context, sessionID string) (*Session, error) {
	return m.mutate(ctx, sessionID, func(s *Session, now time.Time) (Change, error) {
		s.LastAccess, s.ExpiresAt = now, m.expiry(s, now)
		return Change{Op: OpRefreshed, Touch: true}, nil
	})
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

// put writes s with compare-and-set on s.Revision, sealing attributes first.
func (m *Manager) put(ctx context.Context, s *Session, c Change) (uint64, error) {
	return m.store.UpdateSession(ctx, m.sealed(s), c)
}

// checkSize checks s's attributes against the configured limits.
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
