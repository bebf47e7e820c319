package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/sessioncache"
)

// DefaultCacheTouchInterval is how often a session served from the cache
// is touched at the bus when CacheConfig.TouchInterval is 0.
const DefaultCacheTouchInterval = 30 * time.Second

// CacheConfig configures the client's session cache; see [WithCache].
type CacheConfig struct {
	// MaxEntries bounds the sessions held (arbitrary ones are evicted past
	// it). Default sessioncache.DefaultMaxEntries.
	MaxEntries int
	// TouchInterval is how often a session used only through the cache is
	// touched at the bus, in the background and batched, so that its idle
	// timeout slides as if every read went to the bus. Keep it well under
	// the bus's idle timeout. Default [DefaultCacheTouchInterval].
	TouchInterval time.Duration
	// MaxLag bounds how stale the cache may be before it stops answering
	// (see sessioncache.FollowConfig). Default sessioncache.DefaultMaxLag.
	MaxLag time.Duration
	// Subject of the bus's change notices. Default bus.CacheSubject.
	Subject string
}

// WithCache answers GetSession, GetSessionByToken and GetAttribute from
// memory when the cached copy is known current, and from the bus
// otherwise. The cache follows the bus's change notices (no JetStream
// consumer: it needs only session.read) and fails closed: when its feed
// is cut, lags or may have lost a notice, it drops everything and every
// read goes to the bus until it is live again. A session is never served
// past its expires_at. Call [Client.Close] to stop it.
func WithCache(cfg CacheConfig) Option {
	return func(o *options) error {
		if cfg.MaxEntries < 0 || cfg.TouchInterval < 0 || cfg.MaxLag < 0 {
			return fmt.Errorf("%w: cache settings must not be negative", bus.ErrInvalidConfig)
		}
		if cfg.TouchInterval == 0 {
			cfg.TouchInterval = DefaultCacheTouchInterval
		}
		o.cache = &cfg
		return nil
	}
}

// CacheStats counts what the client's cache did.
type CacheStats struct {
	sessioncache.Stats
	// Touches are sessions touched at the bus on behalf of cached reads.
	Touches uint64 `json:"touches"`
	// TouchErrors are touch requests that failed; their sessions are
	// dropped from the cache, so their next read goes to the bus.
	TouchErrors uint64 `json:"touch_errors"`
}

// CacheStats returns the counts of the client's cache; zero without one.
func (c *Client) CacheStats() CacheStats {
	if c.cache == nil {
		return CacheStats{}
	}
	return CacheStats{Stats: c.cache.c.Stats(), Touches: c.cache.touches.Load(), TouchErrors: c.cache.touchErrors.Load()}
}

// Close stops the client's cache, if it has one. The connection stays
// the caller's.
func (c *Client) Close() {
	if c.cache != nil {
		c.cache.close()
	}
}

// maxTouchDelay is how long a due touch waits for others to share its
// request.
const maxTouchDelay = 20 * time.Millisecond

// clientCache is a Client's cache with the touches it owes the bus.
type clientCache struct {
	c        *sessioncache.Cache
	follower *sessioncache.Follower
	interval time.Duration
	due      chan string
	stop     chan struct{}
	wg       sync.WaitGroup

	touches, touchErrors atomic.Uint64
}

func newClientCache(c *Client, cfg CacheConfig) (*clientCache, error) {
	cache := sessioncache.New(cfg.MaxEntries)
	f, err := sessioncache.Follow(c.nc, cache, sessioncache.FollowConfig{Subject: cfg.Subject, MaxLag: cfg.MaxLag})
	if err != nil {
		return nil, fmt.Errorf("%w: follow the bus's change notices: %w", bus.ErrUnavailable, err)
	}
	cc := &clientCache{c: cache, follower: f, interval: cfg.TouchInterval,
		due: make(chan string, 4*bus.MaxTouchBatch), stop: make(chan struct{})}
	cc.wg.Add(1)
	go cc.touchLoop(c)
	return cc, nil
}

func (cc *clientCache) close() {
	select {
	case <-cc.stop:
		return
	default:
	}
	close(cc.stop)
	cc.follower.Close()
	cc.wg.Wait()
}

// served notes a read answered from memory, and queues the session's
// touch when one is due.
func (cc *clientCache) served(id string, now time.Time) {
	if !cc.c.DueForTouch(id, now, cc.interval) {
		return
	}
	select {
	case cc.due <- id:
	default:
		// Too many due at once: drop the copy instead, so the next read
		// goes to the bus, which touches it.
		cc.c.Invalidate(id)
	}
}

// touchLoop sends the due touches in batches of up to bus.MaxTouchBatch.
func (cc *clientCache) touchLoop(c *Client) {
	defer cc.wg.Done()
	batch := make([]string, 0, bus.MaxTouchBatch)
	for {
		select {
		case <-cc.stop:
			return
		case id := <-cc.due:
			batch = append(batch[:0], id)
		}
		deadline := time.NewTimer(maxTouchDelay)
	fill:
		for len(batch) < bus.MaxTouchBatch {
			select {
			case id := <-cc.due:
				batch = append(batch, id)
			case <-deadline.C:
				break fill
			case <-cc.stop:
				deadline.Stop()
				return
			}
		}
		deadline.Stop()
		cc.touch(c, batch)
	}
}

func (cc *clientCache) touch(c *Client, ids []string) {
	var r bus.TouchReply
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.call(ctx, bus.MethodTouch, bus.TouchRequest{SessionIDs: ids}, &r); err != nil {
		cc.touchErrors.Add(1)
		for _, id := range ids { // their next reads go to the bus, and touch
			cc.c.Invalidate(id)
		}
		return
	}
	cc.touches.Add(uint64(len(ids)))
	for _, id := range r.Missing {
		cc.c.Invalidate(id)
	}
}

// The read paths with a cache: memory first, then the bus, whose answer
// is kept unless a notice about it came meanwhile.

func (cc *clientCache) get(ctx context.Context, c *Client, id string) (*bus.Session, error) {
	now := time.Now()
	if s, ok := cc.c.Get(id, now); ok {
		cc.served(id, now)
		return s, nil
	}
	t := cc.c.Begin(id)
	s, err := c.session(ctx, bus.MethodGet, bus.SessionIDRequest{SessionID: id})
	if err == nil {
		cc.c.Fill(t, s, "")
	}
	return s, err
}

func (cc *clientCache) getByToken(ctx context.Context, c *Client, token string) (*bus.Session, error) {
	now := time.Now()
	if s, ok := cc.c.GetByToken(token, now); ok {
		cc.served(s.SessionID, now)
		return s, nil
	}
	t := cc.c.BeginToken()
	s, err := c.session(ctx, bus.MethodGetByToken, bus.TokenRequest{Token: token})
	if err == nil {
		cc.c.Fill(t, s, token)
	}
	return s, err
}

func (cc *clientCache) getAttribute(ctx context.Context, c *Client, id, key string) (string, bool, error) {
	now := time.Now()
	if v, found, hit := cc.c.GetAttribute(id, key, now); hit {
		cc.served(id, now)
		return v, found, nil
	}
	s, err := cc.get(ctx, c, id) // one read that also fills the cache
	if err != nil {
		return "", false, err
	}
	v, ok := s.Attributes[key]
	return v, ok, nil
}
