package bus

import "time"

// A session ends after the idle timeout without use, and never later than
// its max lifetime after creation. Uses slide the idle timeout, a read at
// most once per touch interval.

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
