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
//
// With the record it keeps the revision's change log, which the next write
// of the session extends (see changeLog): so the write needs no read of its
// own when the session was read in this process.
type recordCache struct {
	m *boundedmap.Map[string, cachedRecord] // session id -> last decoded revision
}

type cachedRecord struct {
	s   *bus.Session
	log changeLog
}

func newRecordCache() recordCache {
	return recordCache{m: boundedmap.New[string, cachedRecord](maxCached)}
}

// get returns a copy of the cached session if it is at revision rev.
func (c recordCache) get(id string, rev uint64) (*bus.Session, bool) {
	r, ok := c.m.Get(id)
	if !ok || r.s.Revision != rev {
		return nil, false
	}
	return r.s.Clone(), true
}

// changeLog returns the change log of revision rev of a session, if cached.
func (c recordCache) changeLog(id string, rev uint64) (changeLog, bool) {
	r, ok := c.m.Get(id)
	if !ok || r.s.Revision != rev {
		return changeLog{}, false
	}
	return r.log, true
}

// put keeps a copy of s and its change log.
func (c recordCache) put(s *bus.Session, log changeLog) {
	c.m.Put(s.SessionID, cachedRecord{s: s.Clone(), log: log})
}

// drop forgets a session (deleted).
func (c recordCache) drop(id string) { c.m.Delete(id) }
