package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/internal/retry"
	"github.com/session-bus/session-bus/kvstore"
)

// slowFeed is a store's change feed read slowly until released: a relay on
// it falls behind any write rate, as a relay on a starved machine would.
type slowFeed struct {
	bus.ChangeFeed
	perChange time.Duration
	released  <-chan struct{}
}

func (f slowFeed) Follow(ctx context.Context, after uint64) (bus.ChangeCursor, error) {
	c, err := f.ChangeFeed.Follow(ctx, after)
	if err != nil {
		return nil, err
	}
	return slowCursor{ChangeCursor: c, slowFeed: f}, nil
}

type slowCursor struct {
	bus.ChangeCursor
	slowFeed
}

func (c slowCursor) Next(ctx context.Context) (bus.ChangeBatch, error) {
	b, err := c.ChangeCursor.Next(ctx)
	if err != nil {
		return b, err
	}
	t := time.NewTimer(time.Duration(len(b.Changes)) * c.perChange)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.released:
	case <-ctx.Done():
		return b, ctx.Err()
	}
	return b, nil
}

// loadFor is how long TestRelay_ThrottledLosesNothing writes: 4 s, or
// RELAY_LOAD (a duration, e.g. 5m) for the long run.
var loadFor = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RELAY_LOAD")); err == nil && d > 0 {
		return d
	}
	return 4 * time.Second
}()

// TestRelay_ThrottledLosesNothing: writers go as fast as the bus lets them
// while the relay is throttled to about 10 events/s, far below their rate
// on any machine, for longer than the store's cover: 64 undelivered changes
// of the hot session, and MaxEventLag (3 s here) for all. Then the relay
// runs at full speed. The store holds writes back
// (ErrEventsBehind) instead of losing changes: every acknowledged change is
// announced exactly once, in order per session.
func TestRelay_ThrottledLosesNothing(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t, natstest.RunServer(t))
	cfg := kvstore.DefaultConfig()
	cfg.MaxEventLag = 3 * time.Second
	st, err := kvstore.New(context.Background(), js, cfg)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	m, err := bus.New(st, "svc-a", time.Hour)
	require.NoError(t, err)
	released := make(chan struct{})
	e := &env{js: js, m: m, feed: slowFeed{ChangeFeed: st, perChange: 100 * time.Millisecond, released: released}}
	startRelay(t, e)
	ch := collect(t, js)
	ctx := context.Background()

	hot, err := m.CreateSession(ctx, "hot", "tok-hot")
	require.NoError(t, err)
	var refused atomic.Int64
	var mu sync.Mutex
	acked := map[uint64]string{hot.Revision: hot.SessionID} // revision -> session
	ack := func(s *bus.Session) {
		mu.Lock()
		acked[s.Revision] = s.SessionID
		mu.Unlock()
	}
	// retrying repeats a write the store held back or that lost a
	// compare-and-set, until the load's time is up (a held-back write
	// wrote nothing); any other error fails the test.
	t0 := time.Now()
	retrying := func(write func() error) bool {
		for {
			err := write()
			switch {
			case errors.Is(err, bus.ErrEventsBehind):
				refused.Add(1)
			case !errors.Is(err, bus.ErrConflict):
				return assert.NoError(t, err)
			}
			if time.Since(t0) >= loadFor || retry.Sleep(ctx, 5*time.Millisecond) != nil {
				return false
			}
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Since(t0) < loadFor; i++ {
				if !retrying(func() error {
					s, err := m.CreateSession(ctx, fmt.Sprintf("w%d", w), fmt.Sprintf("w%d-%d", w, i))
					if err == nil {
						ack(s)
					}
					return err
				}) {
					return
				}
				if !retrying(func() error { // one store write per acknowledged update
					s, err := m.GetSession(ctx, hot.SessionID)
					if err != nil {
						return err
					}
					s.Attributes["w"] = fmt.Sprint(w, i)
					if s, err = m.UpdateSession(ctx, s); err == nil {
						ack(s)
					}
					return err
				}) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(released) // the relay catches up at full speed
	t.Logf("%d changes acknowledged in %v, %d writes held back", len(acked), loadFor, refused.Load())
	require.Positive(t, refused.Load(), "the relay fell behind past the store's cover")

	// Every acknowledged change is announced once; reads may have added
	// refreshes (each a change of its own) besides.
	var got []events.Event
	for announced := 0; announced < len(acked); {
		ev := next(t, ch, natstest.Patience)
		got = append(got, ev)
		if _, ok := acked[ev.Revision]; ok {
			announced++
		}
	}
	quiet(t, ch, 200*time.Millisecond)
	requireOrderedOnce(t, got)
	for _, ev := range got {
		id, ok := acked[ev.Revision]
		if !ok {
			assert.Equal(t, events.SessionRefreshed, ev.Type, "only refreshes were not acknowledged to a writer")
			continue
		}
		assert.Equal(t, id, ev.SessionID)
		delete(acked, ev.Revision)
	}
	assert.Empty(t, acked, "every acknowledged change announced")
}
