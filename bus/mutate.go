package bus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Writes to one session are group-committed: a writer queues its change and
// takes the session's stripe lock; whoever holds the lock applies every
// change queued for that session by the same service, in arrival order, and
// writes them as one compare-and-set. So N concurrent writers of a hot
// session cost far fewer than N store round trips, each acknowledged change
// is in exactly one stored revision (one event, whose keys name it), and the
// acting service of a revision is always the one that made its changes.

// errNoChange tells mutate the session needs no write.
var errNoChange = errors.New("no change")

// maxBatch bounds how many queued changes one write carries.
const maxBatch = 64

// mutation is one caller's change to a session, waiting to be written.
type mutation struct {
	caller string
	fn     func(s *Session, now time.Time) (Change, error)
	done   chan mutationResult // buffered: the writer never blocks on it
}

type mutationResult struct {
	s   *Session
	err error
}

// writeQueue holds the mutations waiting for one stripe, by session id.
type writeQueue struct {
	mu      sync.Mutex
	waiting map[string][]*mutation
}

func (q *writeQueue) push(id string, w *mutation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiting == nil {
		q.waiting = map[string][]*mutation{}
	}
	q.waiting[id] = append(q.waiting[id], w)
}

// take removes and returns up to maxBatch mutations of id by w's caller,
// w first, or nil when w was already taken by another writer.
func (q *writeQueue) take(id string, w *mutation) []*mutation {
	q.mu.Lock()
	defer q.mu.Unlock()
	all := q.waiting[id]
	if !slices.Contains(all, w) {
		return nil
	}
	batch := []*mutation{w}
	rest := all[:0:0]
	for _, o := range all {
		if o != w && o.caller == w.caller && len(batch) < maxBatch {
			batch = append(batch, o)
		} else if o != w {
			rest = append(rest, o)
		}
	}
	if len(rest) == 0 {
		delete(q.waiting, id)
	} else {
		q.waiting[id] = rest
	}
	return batch
}

// mutate applies fn to the latest version of a session and writes it with
// compare-and-set, retrying on conflict with jittered backoff until it
// lands, the ctx ends, or maxCASAttempts pass. Concurrent calls for one
// session by one service may land in one write (see above); each returns
// the session as written.
func (m *Manager) mutate(ctx context.Context, id string, fn func(s *Session, now time.Time) (Change, error)) (*Session, error) {
	if err := ValidateSessionID(id); err != nil {
		return nil, err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	w := &mutation{caller: m.caller(ctx), fn: fn, done: make(chan mutationResult, 1)}
	n := stripe(id)
	m.queued[n].push(id, w)
	mu := &m.stripes[n]
	mu.Lock()
	defer mu.Unlock()
	if batch := m.queued[n].take(id, w); batch != nil {
		m.writeBatch(ctx, id, batch)
	}
	r := <-w.done // written by us or by the writer that took it
	return r.s, r.err
}

// writeBatch writes the changes of batch (one caller's) to session id in one
// compare-and-set write and answers each. ctx is the first writer's; the
// others wait on it within their own deadlines' worth of attempts.
func (m *Manager) writeBatch(ctx context.Context, id string, batch []*mutation) {
	errs := make([]error, len(batch))
	var s *Session
	err := retryCAS(ctx, ErrConflict, func() error {
		var err error
		if s, err = m.load(ctx, id); err != nil {
			return err
		}
		now := m.o.now()
		merged, changed := Change{Service: batch[0].caller}, false
		for i, w := range batch {
			next := s.Clone()
			c, err := w.fn(next, now)
			if err == nil {
				err = m.checkSize(next)
			}
			if errors.Is(err, errNoChange) {
				err = nil
				next = s
			} else if err == nil {
				merged, changed = mergeChange(merged, c), true
			}
			errs[i] = err
			if err == nil {
				s = next
			}
		}
		if !changed {
			return nil
		}
		if !merged.Touch {
			merged.Touch = m.slide(s, now)
		}
		rev, err := m.put(ctx, s, merged)
		if err != nil {
			return m.storeErr("update session", err)
		}
		s.Revision = rev
		return nil
	})
	for i, w := range batch {
		switch {
		case errs[i] != nil:
			w.done <- mutationResult{err: errs[i]}
		case err != nil:
			w.done <- mutationResult{err: err}
		default:
			w.done <- mutationResult{s: s.Clone()}
		}
	}
}

// mergeChange folds c into the change of a batch: an update if any change
// updates, the union of keys, a touch if any touches.
func mergeChange(into, c Change) Change {
	if into.Op != OpUpdated {
		into.Op = c.Op
	}
	for _, k := range c.Keys {
		if !slices.Contains(into.Keys, k) {
			into.Keys = append(into.Keys, k)
		}
	}
	slices.Sort(into.Keys)
	into.Touch = into.Touch || c.Touch
	return into
}
