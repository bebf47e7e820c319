package bus

import "time"

// A session ends after the idle timeout without use, and never later than
// its max lifetime after creation. Uses slide the idle timeout, a read at
// most once per touch interval.

// expiry is when s ends if used at now: the idle timeout, capped by the
// absolute lifetime. A capped expiry is whole seconds from now, at or
// before the cap: stores keep TTLs in whole seconds from the write
// (kvstore rounds up), so a cap a fraction of a second away would end the
// session up to a second late (measured 0.95 to 1.2 s); this way it ends
// on time, within a second before its lifetime, never after it.
func (m *Manager) expiry(s *Session, now time.Time) time.Time {
	e := now.Add(m.idle)
	if m.o.maxLifetime > 0 {
		if limit := s.CreateTime.Add(m.o.maxLifetime); limit.Before(e) {
			return now.Add(limit.Sub(now).Truncate(time.Second))
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
