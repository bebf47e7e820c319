package kvstore

import (
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/boundedmap"
)

// maxCached bounds the decoded records kept; past it the cache starts over.
const maxCached = 16384

// recordCache keeps the last decoded revision of recently read sessions.
// Reads far outnumber writes, and decoding a record's JSON is the largest
// cost of a read that the bus controls; a revision never changes, so a
// record read again at the same revision is served as a copy of the one
// decoded before. The cache holds no token, only what the bucket holds.
type recordCache struct {
	m *boundedmap.Map[string, *bus.Session] // session id -> last decoded revision
}

func newRecordCache() recordCache {
	return recordCache{m: boundedmap.New[string, *bus.Session](maxCached)}
}

// get returns a copy of the cached session if it is at revision rev.
func (c recordCache) get(id string, rev uint64) (*bus.Session, bool) {
	s, ok := c.m.Get(id)
	if !ok || s.Revision != rev {
		return nil, false
	}
	return s.Clone(), true
}

// put keeps a copy of s.
func (c recordCache) put(s *bus.Session) { c.m.Put(s.SessionID, s.Clone()) }

// drop forgets a session (deleted).
func (c recordCache) drop(id string) { c.m.Delete(id) }
