package sessioncache

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// DefaultMaxLag is how stale a follower lets its feed become when
// FollowConfig.MaxLag is 0.
const DefaultMaxLag = time.Second

// FollowConfig configures a [Follower].
type FollowConfig struct {
	// Subject of the change notices. Default bus.CacheSubject.
	Subject string
	// MaxLag bounds how stale the cache may be: when no notice of a bus
	// process arrived for this long, or a notice arrives this late (by the
	// publisher's clock, so clocks must agree well within it), the cache
	// drops everything, and answers nothing while no bus process is heard
	// in time. At least 4 heartbeats. Default [DefaultMaxLag].
	MaxLag time.Duration
	// Log receives the reasons the cache was dropped. Default: discard.
	Log *slog.Logger
	// Strict: the cache does not answer while a notice it has received is
	// not applied yet, so a request that arrives after a write's reply
	// sees the write (the bus's own cache, whose requests and notices
	// share a connection). It costs a lock per read; without it a notice
	// is applied within microseconds of its arrival.
	Strict bool
}

// Follower keeps a [Cache] coherent from the change notices of every bus
// process, and fails closed: the cache answers only while the follower
// is subscribed, connected, has heard a bus process within MaxLag, and has
// not dropped a notice. Whatever may have hidden a change (a gap in a
// publisher's sequence, a publisher gone silent, a slow consumer, a
// disconnect, a malformed notice) drops every cached session.
type Follower struct {
	c      *Cache
	nc     *nats.Conn
	sub    *nats.Subscription
	maxLag time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	pubs    map[string]*publisherState
	dropped int // the subscription's dropped count when last checked
	// lastDropLog and dropsUnlogged rate-limit the drop warning.
	lastDropLog   time.Time
	dropsUnlogged int
	linked        bool

	status chan nats.Status
	stop   chan struct{}
	wg     sync.WaitGroup
}

type publisherState struct {
	seq  uint64
	seen time.Time
}

// Follow subscribes c to the change notices on nc. The cache answers once
// the first notice (a heartbeat comes every [HeartbeatInterval]) has
// arrived.
func Follow(nc *nats.Conn, c *Cache, cfg FollowConfig) (*Follower, error) {
	if cfg.Subject == "" {
		cfg.Subject = bus.CacheSubject
	}
	if cfg.MaxLag == 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.MaxLag < 4*HeartbeatInterval {
		return nil, errors.New("sessioncache: max lag must be at least 4 heartbeats")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Follower{c: c, nc: nc, maxLag: cfg.MaxLag, log: cfg.Log, pubs: map[string]*publisherState{},
		linked: true, stop: make(chan struct{})}
	c.setCurrent(false)
	f.status = nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	sub, err := nc.Subscribe(cfg.Subject, f.handle)
	if err == nil {
		// Notices are small: let a burst queue rather than be dropped.
		err = sub.SetPendingLimits(1<<20, 256<<20)
	}
	if err == nil {
		err = nc.Flush() // the server has the subscription from here on
	}
	if err != nil {
		nc.RemoveStatusListener(f.status)
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		return nil, err
	}
	f.sub = sub
	// nats.go counts a message as pending until its handler returns.
	pending := func() bool {
		n, _, err := sub.Pending()
		return err != nil || n > 0
	}
	if !cfg.Strict {
		pending = func() bool { return false }
	}
	c.pending.Store(&pending)
	f.wg.Add(1)
	go f.watch()
	return f, nil
}

// Close stops following; the cache answers nothing from then on.
func (f *Follower) Close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	_ = f.sub.Unsubscribe()
	f.nc.RemoveStatusListener(f.status)
	f.wg.Wait()
	f.c.setCurrent(false)
}

// handle applies one notice. It runs on the subscription's goroutine, so
// notices are applied in the order the server delivered them.
func (f *Follower) handle(m *nats.Msg) {
	var n bus.CacheNotice
	if err := json.Unmarshal(m.Data, &n); err != nil || n.Publisher == "" || n.Seq == 0 {
		f.lose("a malformed notice")
		return
	}
	for _, id := range n.SessionIDs {
		f.c.Invalidate(id)
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pubs[n.Publisher]
	switch {
	case n.Bye:
		if p != nil && n.Seq != p.seq+1 || p == nil && n.Seq != 1 {
			f.loseLocked("a gap before a publisher's goodbye")
		}
		delete(f.pubs, n.Publisher)
		f.checkLocked()
		return
	case p == nil:
		if n.Seq != 1 && f.c.Current() {
			// Its first notices did not reach us.
			f.loseLocked("a new publisher's first notices")
		}
		p = &publisherState{}
		f.pubs[n.Publisher] = p
	case n.Seq != p.seq+1:
		f.loseLocked("a gap in a publisher's notices")
	}
	p.seq, p.seen = n.Seq, now
	if lag := now.Sub(time.Unix(0, n.SentAt)); lag > f.maxLag {
		p.seen = time.Time{} // not heard in time: see checkLocked
		f.loseLocked("a notice " + lag.Round(time.Millisecond).String() + " late")
	}
	f.checkLocked()
}

// watch checks, every quarter of MaxLag and at each connection status
// change, what a notice cannot tell: silence, drops and disconnects.
func (f *Follower) watch() {
	defer f.wg.Done()
	tick := time.NewTicker(f.maxLag / 4)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case st := <-f.status:
			f.mu.Lock()
			if st != nats.CONNECTED {
				f.linked = false
				f.loseLocked("the connection is " + st.String())
			} else {
				// Notices sent while we were away are lost: start over.
				f.linked = true
				clear(f.pubs)
			}
			f.checkLocked()
			f.mu.Unlock()
		case <-tick.C:
			f.mu.Lock()
			now := time.Now()
			for id, p := range f.pubs {
				if now.Sub(p.seen) > f.maxLag {
					// Gone, or cut off: its last changes may not have
					// reached us.
					delete(f.pubs, id)
					f.loseLocked("a publisher silent for over " + f.maxLag.String())
				}
			}
			if d, err := f.sub.Dropped(); err == nil && d != f.dropped {
				f.dropped = d
				f.loseLocked("notices dropped (slow consumer)")
			}
			if f.nc.Status() != nats.CONNECTED {
				f.linked = false
			}
			f.checkLocked()
			f.mu.Unlock()
		}
	}
}

// loseLocked drops every cached session: a change may have been missed.
func (f *Follower) loseLocked(why string) {
	if f.c.Current() {
		// A skewed publisher clock would drop the cache at every notice:
		// say so once in a while, with the count, not ten times a second.
		f.dropsUnlogged++
		if now := time.Now(); now.Sub(f.lastDropLog) >= dropLogInterval {
			f.log.Warn("session cache dropped", "why", why, "drops", f.dropsUnlogged)
			f.lastDropLog, f.dropsUnlogged = now, 0
		}
	}
	f.c.Flush()
}

// dropLogInterval bounds how often a follower logs that it dropped its
// cache; the log line counts the drops since the last one.
const dropLogInterval = 10 * time.Second

func (f *Follower) lose(why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseLocked(why)
}

// checkLocked makes the cache answer exactly while the connection is up
// and some bus process was heard within MaxLag.
func (f *Follower) checkLocked() {
	ok := f.linked
	if ok {
		ok = false
		now := time.Now()
		for _, p := range f.pubs {
			if now.Sub(p.seen) <= f.maxLag {
				ok = true
				break
			}
		}
	}
	if ok != f.c.Current() {
		f.c.setCurrent(ok)
	}
}
