package kvstore

import (
	"sync"

	"github.com/session-bus/session-bus/bus"
)

// maxCached bounds the decoded records kept; past it the cache starts over.
const maxCached = 16384

// recordCache keeps the last decoded revision of recently read sessions.
// Reads far outnumber writes, and decoding a record's JSON is the largest
// cost of a read that the bus controls; a revision never changes, so a
// record read again at the same revision is served as a copy of the one
// decoded before. The cache holds no token, only what the bucket holds.
type recordCache struct {
	mu sync.Mutex
	m  map[string]*bus.Session // session id -> last decoded revision
}

// get returns a copy of the cached session if it is at revision rev.
func (c *recordCache) get(id string, rev uint64) (*bus.Session, bool) {
	c.mu.Lock()
	s, ok := c.m[id]
	c.mu.Unlock()
	if !ok || s.Revision != rev {
		return nil, false
	}
	return s.Clone(), true
}

// put keeps a copy of s.
func (c *recordCache) put(s *bus.Session) {
	cp := s.Clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[string]*bus.Session, 1024)
	}
	c.m[s.SessionID] = cp
}

// drop forgets a session (deleted).
func (c *recordCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
