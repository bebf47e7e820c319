package sessioncache

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/session-bus/session-bus/bus"
)

// DefaultMaxEntries bounds a cache's sessions when Config.MaxEntries is 0.
const DefaultMaxEntries = 100_000

// shards splits the cache so that readers on many cores rarely meet, and
// so that a fill is dropped only for a notice in its own shard.
const shards = 256

// Cache is a bounded, coherent copy of sessions. It answers only while it
// is current (see [Follower]): a cache that may have missed a change
// answers nothing until it has caught up again, and drops what it held.
// It is safe for concurrent use.
type Cache struct {
	max   int // entries per shard
	seed  maphash.Seed
	salt  [16]byte // keys tokens: no token is kept in clear
	shard [shards]shard

	current atomic.Bool // the follower vouches for every entry
	// pending reports notices received but not yet applied (always false
	// unless FollowConfig.Strict): a read falls through while there are
	// any, so a write whose notice came before a request is seen by it.
	pending atomic.Pointer[func() bool]
	epoch   atomic.Uint64 // moves on at each flush: fills begun before are dropped

	hits, misses, fallThroughs, invalidations, flushes, evictions atomic.Uint64

	// recent remembers the last notices, so that a read by token, whose
	// session was unknown when it began, is kept out only by a notice of
	// its own session (any notice at all would keep most reads out under
	// steady writes).
	recentMu sync.Mutex
	recent   [recentNotices]notice
}

// recentNotices is how many notices a read by token can look back over;
// a read that saw more go by is kept out.
const recentNotices = 4096

type notice struct {
	n  uint64 // the value of invalidations it set
	id string
}

type shard struct {
	mu      sync.RWMutex
	gen     uint64 // moves on at each invalidation in this shard
	entries map[string]*entry
	tokens  map[[sha256.Size]byte]string // token hash -> session id
}

// entry is a cached session; s is never modified after it is stored.
type entry struct {
	s       *bus.Session
	token   [sha256.Size]byte // the token hash it was read by, if any
	touched atomic.Int64      // Unix nanoseconds of the last touch queued
}

// Stats counts what a cache did.
type Stats struct {
	// Hits are reads answered from memory.
	Hits uint64 `json:"hits"`
	// Misses are reads of sessions the cache did not hold (or held past
	// their expiry), answered by the bus.
	Misses uint64 `json:"misses"`
	// FallThroughs are reads answered by the bus because the cache was
	// not current (feed cut, lagging, or starting).
	FallThroughs uint64 `json:"fall_throughs"`
	// Invalidations are sessions named by change notices (cached or not).
	Invalidations uint64 `json:"invalidations"`
	// Flushes are times the whole cache was dropped because a notice may
	// have been missed.
	Flushes uint64 `json:"flushes"`
	// Evictions are sessions dropped to stay within the entry bound.
	Evictions uint64 `json:"evictions"`
	// Entries is how many sessions the cache holds now.
	Entries int `json:"entries"`
	// Current says whether the cache answers reads now.
	Current bool `json:"current"`
}

// New returns an empty cache of at most maxEntries sessions (0 means
// [DefaultMaxEntries]). It is not current until a [Follower] says so.
func New(maxEntries int) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	c := &Cache{max: max(1, (maxEntries+shards-1)/shards), seed: maphash.MakeSeed()}
	_, _ = rand.Read(c.salt[:])
	for i := range c.shard {
		c.shard[i].entries = map[string]*entry{}
		c.shard[i].tokens = map[[sha256.Size]byte]string{}
	}
	return c
}

func (c *Cache) shardOf(id string) *shard {
	return &c.shard[maphash.String(c.seed, id)%shards]
}

// tokenShard is where the token map keeps a token hash.
func (c *Cache) tokenShard(h [sha256.Size]byte) *shard {
	return &c.shard[maphash.Bytes(c.seed, h[:])%shards]
}

func (c *Cache) tokenHash(token string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(c.salt[:])
	h.Write([]byte(token))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Get returns a copy of the cached session with that id when the cache is
// current and the session has not reached its expiry at now.
func (c *Cache) Get(id string, now time.Time) (*bus.Session, bool) {
	e := c.lookup(id, now)
	if e == nil {
		return nil, false
	}
	return e.s.Clone(), true
}

// GetAttribute is Get of one attribute, without copying the session.
func (c *Cache) GetAttribute(id, key string, now time.Time) (value string, found, hit bool) {
	e := c.lookup(id, now)
	if e == nil {
		return "", false, false
	}
	v, ok := e.s.Attributes[key]
	return v, ok, true
}

// GetByToken returns a copy of the cached session that was read by this
// token, as Get does.
func (c *Cache) GetByToken(token string, now time.Time) (*bus.Session, bool) {
	if !c.answering() {
		c.fallThroughs.Add(1)
		return nil, false
	}
	h := c.tokenHash(token)
	sh := c.tokenShard(h)
	sh.mu.RLock()
	id, ok := sh.tokens[h]
	sh.mu.RUnlock()
	var e *entry
	if ok {
		e = c.held(id, now)
	}
	if e == nil || e.token != h {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.s.Clone(), true
}

// answering reports whether the cache may answer now.
func (c *Cache) answering() bool {
	if !c.current.Load() {
		return false
	}
	p := c.pending.Load()
	return p != nil && !(*p)()
}

// lookup returns the live entry of id when the cache answers, counting
// the read as a hit, a miss or a fall-through.
func (c *Cache) lookup(id string, now time.Time) *entry {
	if !c.answering() {
		c.fallThroughs.Add(1)
		return nil
	}
	e := c.held(id, now)
	if e == nil {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e
}

// held returns the entry of id if it is held and live at now.
func (c *Cache) held(id string, now time.Time) *entry {
	sh := c.shardOf(id)
	sh.mu.RLock()
	e := sh.entries[id]
	sh.mu.RUnlock()
	if e == nil || !now.Before(e.s.ExpiresAt) {
		return nil
	}
	return e
}

// Ticket is taken before a read from the bus and given to [Cache.Fill]
// with its answer, so that a notice that arrives while the read is in
// flight keeps its (maybe older) answer out of the cache.
type Ticket = bus.ReadTicket

var _ bus.ReadCache = (*Cache)(nil)

// Begin returns the ticket of a read of session id.
func (c *Cache) Begin(id string) Ticket {
	if !c.current.Load() {
		return Ticket{}
	}
	sh := c.shardOf(id)
	sh.mu.RLock()
	gen := sh.gen
	sh.mu.RUnlock()
	return Ticket{Epoch: c.epoch.Load(), Gen: gen, OK: true}
}

// BeginToken returns the ticket of a read by token: the session's id is
// not known before the answer, so Fill looks back over the notices since.
func (c *Cache) BeginToken() Ticket {
	if !c.current.Load() {
		return Ticket{}
	}
	return Ticket{Epoch: c.epoch.Load(), Gen: c.invalidations.Load(), OK: true}
}

// Fill stores s, as read from the bus with ticket t, unless a notice
// of its shard or a flush came after the ticket. token is the token s was
// read by, or "".
func (c *Cache) Fill(t Ticket, s *bus.Session, token string) {
	if !t.OK || s == nil {
		return
	}
	var h [sha256.Size]byte
	if token != "" {
		h = c.tokenHash(token)
	}
	e := &entry{s: s.Clone(), token: h}
	e.s.Token = ""
	e.touched.Store(time.Now().UnixNano()) // the read that filled it touched it
	sh := c.shardOf(s.SessionID)
	sh.mu.Lock()
	// A read by token did not know its shard: a notice of its session
	// since it began keeps it out. Invalidate records under the shard's
	// lock, so a notice of this session is either seen here or comes after
	// the store.
	stale := sh.gen != t.Gen
	if token != "" {
		stale = c.noticedSince(t.Gen, s.SessionID)
	}
	if !c.current.Load() || c.epoch.Load() != t.Epoch || stale {
		sh.mu.Unlock()
		return
	}
	if len(sh.entries) >= c.max {
		if _, ok := sh.entries[s.SessionID]; !ok {
			for id := range sh.entries { // map order: an arbitrary victim
				delete(sh.entries, id)
				c.evictions.Add(1)
				break
			}
		}
	}
	sh.entries[s.SessionID] = e
	sh.mu.Unlock()
	if token != "" {
		tsh := c.tokenShard(h)
		tsh.mu.Lock()
		if len(tsh.tokens) >= 2*c.max {
			clear(tsh.tokens) // stale ones cost a miss, never a wrong answer
		}
		tsh.tokens[h] = s.SessionID
		tsh.mu.Unlock()
	}
}

// Invalidate drops the cached copy of session id, and keeps reads of it
// that are in flight out of the cache.
func (c *Cache) Invalidate(id string) {
	sh := c.shardOf(id)
	sh.mu.Lock()
	sh.gen++
	n := c.invalidations.Add(1) // under the lock: see Fill
	c.recentMu.Lock()
	c.recent[n%recentNotices] = notice{n: n, id: id}
	c.recentMu.Unlock()
	delete(sh.entries, id)
	sh.mu.Unlock()
}

// noticedSince reports whether a notice after the n-th named session id,
// or whether too many came since to tell.
func (c *Cache) noticedSince(n uint64, id string) bool {
	last := c.invalidations.Load()
	if last == n {
		return false
	}
	if last-n >= recentNotices {
		return true
	}
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	for k := n + 1; k <= last; k++ {
		if r := c.recent[k%recentNotices]; r.n != k || r.id == id {
			return true // overwritten meanwhile, or this session's
		}
	}
	return false
}

// Flush drops every cached session and keeps reads in flight out.
func (c *Cache) Flush() {
	c.epoch.Add(1)
	c.flushes.Add(1)
	for i := range c.shard {
		sh := &c.shard[i]
		sh.mu.Lock()
		clear(sh.entries)
		clear(sh.tokens)
		sh.gen++
		sh.mu.Unlock()
	}
}

// setCurrent says whether the cache may answer. Becoming not current
// drops everything, and fills begun before are kept out.
func (c *Cache) setCurrent(ok bool) {
	if !ok {
		c.current.Store(false)
		c.Flush()
		return
	}
	c.epoch.Add(1)
	c.current.Store(true)
}

// Current reports whether the cache answers reads.
func (c *Cache) Current() bool { return c.current.Load() }

// InvalidateToken drops the session that was read by token, if held.
func (c *Cache) InvalidateToken(token string) {
	h := c.tokenHash(token)
	sh := c.tokenShard(h)
	sh.mu.RLock()
	id, ok := sh.tokens[h]
	sh.mu.RUnlock()
	if ok {
		c.Invalidate(id)
	}
}

// InvalidateLogin drops every held session of loginID. It walks the whole
// cache: it is for a logout-all made through this cache's own client,
// whose notices may not have been applied when its reply arrives.
func (c *Cache) InvalidateLogin(loginID string) {
	for i := range c.shard {
		sh := &c.shard[i]
		sh.mu.Lock()
		for id, e := range sh.entries {
			if e.s.LoginID == loginID {
				delete(sh.entries, id)
				sh.gen++
			}
		}
		sh.mu.Unlock()
	}
}

// DueForTouch reports whether session id is held and was last touched
// at least interval before now, and if so marks it touched at now: a
// session served from memory is touched at the bus once per interval.
func (c *Cache) DueForTouch(id string, now time.Time, interval time.Duration) bool {
	sh := c.shardOf(id)
	sh.mu.RLock()
	e := sh.entries[id]
	sh.mu.RUnlock()
	if e == nil {
		return false
	}
	last := e.touched.Load()
	if now.UnixNano()-last < int64(interval) {
		return false
	}
	return e.touched.CompareAndSwap(last, now.UnixNano())
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	n := 0
	for i := range c.shard {
		sh := &c.shard[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), FallThroughs: c.fallThroughs.Load(),
		Invalidations: c.invalidations.Load(), Flushes: c.flushes.Load(), Evictions: c.evictions.Load(),
		Entries: n, Current: c.current.Load(),
	}
}
