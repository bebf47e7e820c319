package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

// runFeed checks a store's bus.ChangeFeed, when it offers one: every
// acknowledged change yields exactly one record, in per-session order.
func runFeed(t *testing.T, newStore NewStore) {
	if _, ok := newStore(t).(bus.ChangeFeed); !ok {
		t.Skip("the store offers no change feed")
	}
	t.Run("EveryChangeOnce", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		r := startReader(t, st.(bus.ChangeFeed))
		ctx := ctxFor(t)

		s := newSession(uuid.NewString(), "ann", "fp-a", time.Minute)
		rev, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated, Service: "svc-a"})
		require.NoError(t, err)
		want := []bus.ChangeRecord{{Seq: rev, Op: bus.OpCreated, SessionID: s.SessionID, LoginID: "ann", ServiceID: "svc-a"}}
		s.Revision = rev
		s.Attributes["role"] = "admin"
		rev, err = st.UpdateSession(ctx, s, bus.Change{Op: bus.OpUpdated, Service: "svc-b", Keys: []string{"role"}})
		require.NoError(t, err)
		want = append(want, bus.ChangeRecord{Seq: rev, Op: bus.OpUpdated, SessionID: s.SessionID, LoginID: "ann", ServiceID: "svc-b", Keys: []string{"role"}})
		s.Revision = rev
		s.ExpiresAt = time.Now().Add(2 * time.Minute)
		rev, err = st.UpdateSession(ctx, s, bus.Change{Op: bus.OpRefreshed, Service: "svc-b", Touch: true})
		require.NoError(t, err)
		want = append(want, bus.ChangeRecord{Seq: rev, Op: bus.OpRefreshed, SessionID: s.SessionID, LoginID: "ann", ServiceID: "svc-b"})
		s.Revision = rev
		require.NoError(t, st.DeleteSession(ctx, s, bus.Change{Op: bus.OpDeleted, Service: "svc-c", Reason: bus.ReasonLogout}))
		require.NoError(t, st.DeleteSession(ctx, s, bus.Change{Op: bus.OpDeleted, Service: "svc-c", Reason: bus.ReasonLogout}),
			"deleting what is gone is no error, and no change")
		want = append(want, bus.ChangeRecord{Op: bus.OpDeleted, SessionID: s.SessionID, LoginID: "ann", ServiceID: "svc-c", Reason: bus.ReasonLogout})

		// A refused create is no change.
		other := newSession(uuid.NewString(), "bob", "fp-b", time.Minute)
		_, err = st.CreateSession(ctx, other, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		_, err = st.CreateSession(ctx, newSession(uuid.NewString(), "eve", "fp-b", time.Minute), bus.Change{Op: bus.OpCreated})
		require.ErrorIs(t, err, bus.ErrTokenInUse)

		got := r.waitFor(t, s.SessionID, len(want))
		require.Len(t, got, len(want))
		for i := range want {
			if want[i].Seq != 0 {
				assert.Equal(t, want[i].Seq, got[i].Seq, "record %d", i)
			}
			got[i].Seq, got[i].Time, want[i].Seq = 0, time.Time{}, 0
			assert.Equal(t, want[i], got[i], "record %d", i)
		}
		r.waitFor(t, other.SessionID, 1)
		r.requireOnceInOrder(t)
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		r := startReader(t, st.(bus.ChangeFeed))
		s := newSession(uuid.NewString(), "cat", "fp-c", time.Second)
		_, err := st.CreateSession(ctxFor(t), s, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		got := r.waitFor(t, s.SessionID, 2)
		assert.Equal(t, bus.OpExpired, got[1].Op)
		assert.Equal(t, "cat", got[1].LoginID)
		assert.Empty(t, got[1].ServiceID)
		r.requireOnceInOrder(t)
	})

	t.Run("ReaderDownNothingLost", func(t *testing.T) {
		t.Parallel()
		runReaderDown(t, newStore)
	})

	t.Run("ConcurrentWritersNothingLost", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		r := startReader(t, st.(bus.ChangeFeed))
		ctx := ctxFor(t)
		acked := newAckedChanges()
		hot := newSession(uuid.NewString(), "hot", "fp-hot", time.Hour)
		rev, err := st.CreateSession(ctx, hot, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		acked.add(hot.SessionID, rev)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 25 {
					// One write to the hot session, one create of its own.
					rev, err := updateRetrying(ctx, st, hot.SessionID, fmt.Sprintf("w%d", w))
					if !assert.NoError(t, err) {
						return
					}
					acked.add(hot.SessionID, rev)
					s := newSession(uuid.NewString(), "many", fmt.Sprintf("fp-%d-%d", w, i), time.Hour)
					rev, err = writeRetrying(ctx, func() (uint64, error) { return st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated}) })
					if !assert.NoError(t, err) {
						return
					}
					acked.add(s.SessionID, rev)
				}
			})
		}
		wg.Wait()
		for id, revs := range acked.bySession() {
			got := r.waitFor(t, id, len(revs))
			var seqs []uint64
			for _, c := range got {
				seqs = append(seqs, c.Seq)
			}
			assert.Equal(t, revs, seqs, "session %s: one record per acknowledged change, in order", id)
		}
		r.requireOnceInOrder(t)
	})
}

// runReaderDown: while no reader runs, sessions change many times
// (below the store's per-session bound); a reader that starts from the
// last delivery yields every change made meanwhile, in order. Changes it
// marks Repeat are the only ones the first reader may have had.
func runReaderDown(t *testing.T, newStore NewStore) {
	st := newStore(t)
	feed := st.(bus.ChangeFeed)
	ctx := ctxFor(t)
	first := startReader(t, feed)
	acked := newAckedChanges()
	hot := newSession(uuid.NewString(), "hot", "fp-hot", time.Hour)
	rev, err := st.CreateSession(ctx, hot, bus.Change{Op: bus.OpCreated})
	require.NoError(t, err)
	acked.add(hot.SessionID, rev)
	first.waitFor(t, hot.SessionID, 1)
	first.stop()

	var last string
	for i := range 30 {
		rev, err := updateRetrying(ctx, st, hot.SessionID, fmt.Sprint(i))
		require.NoError(t, err)
		acked.add(hot.SessionID, rev)
		s := newSession(uuid.NewString(), "many", fmt.Sprintf("fp-%d", i), time.Hour)
		rev, err = st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		acked.add(s.SessionID, rev)
		last = s.SessionID
	}
	d, ok, err := feed.LastDelivered(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	second := startReaderAfter(t, feed, d.Position)
	had := map[uint64]bool{}
	for _, c := range first.records() {
		had[c.Seq] = true
	}
	second.waitFor(t, last, 1) // the last write: every earlier one is read
	seqs := map[string][]uint64{}
	for _, c := range first.records() {
		seqs[c.SessionID] = append(seqs[c.SessionID], c.Seq)
	}
	for _, c := range second.records() {
		if c.Repeat && had[c.Seq] {
			continue
		}
		require.False(t, had[c.Seq], "change %d yielded again without the Repeat mark", c.Seq)
		seqs[c.SessionID] = append(seqs[c.SessionID], c.Seq)
	}
	for id, revs := range acked.bySession() {
		assert.Equal(t, revs, seqs[id], "session %s: every change once, in order", id)
	}
}

// updateRetrying sets an attribute of session id, reading again after a
// lost compare-and-set and waiting while the store holds writes back.
func updateRetrying(ctx context.Context, st bus.Store, id, value string) (uint64, error) {
	return writeRetrying(ctx, func() (uint64, error) {
		s, err := st.GetSession(ctx, id)
		if err != nil {
			return 0, err
		}
		s.Attributes["w"] = value
		return st.UpdateSession(ctx, s, bus.Change{Op: bus.OpUpdated, Keys: []string{"w"}})
	})
}

// writeRetrying retries write after a conflict or ErrEventsBehind.
func writeRetrying(ctx context.Context, write func() (uint64, error)) (uint64, error) {
	for {
		rev, err := write()
		if !errors.Is(err, bus.ErrConflict) && !errors.Is(err, bus.ErrEventsBehind) {
			return rev, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// ackedChanges collects the revisions writes returned, per session.
type ackedChanges struct {
	mu   sync.Mutex
	revs map[string][]uint64
}

func newAckedChanges() *ackedChanges { return &ackedChanges{revs: map[string][]uint64{}} }

func (a *ackedChanges) add(id string, rev uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revs[id] = append(a.revs[id], rev)
}

// bySession returns each session's revisions, in increasing order (a
// store's revisions of one session increase with each write).
func (a *ackedChanges) bySession() map[string][]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]uint64{}
	for id, revs := range a.revs {
		out[id] = slices.Sorted(slices.Values(revs))
	}
	return out
}

// reader follows a feed from its head as the event relay does: it records
// each batch as delivered once it has it.
type reader struct {
	mu     sync.Mutex
	all    []bus.ChangeRecord
	notify chan struct{}
	stop   func() // stops reading; safe to call twice
}

func startReader(t *testing.T, feed bus.ChangeFeed) *reader {
	t.Helper()
	head, err := feed.Head(ctxFor(t))
	require.NoError(t, err)
	require.NoError(t, feed.Delivered(ctxFor(t), bus.Delivery{Position: head, AsOf: time.Now()}))
	return startReaderAfter(t, feed, head)
}

// startReaderAfter starts a reader after position pos.
func startReaderAfter(t *testing.T, feed bus.ChangeFeed, pos uint64) *reader {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxFor(t))
	cur, err := feed.Follow(ctx, pos)
	require.NoError(t, err)
	done := make(chan struct{})
	r := &reader{notify: make(chan struct{}, 1)}
	r.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		cur.Stop()
	})
	t.Cleanup(r.stop)
	go func() {
		defer close(done)
		for {
			b, err := cur.Next(ctx)
			if err != nil {
				return
			}
			// Recorded before it is seen: a reader stopped right after a
			// waitFor has delivered what that waitFor saw (a reader that
			// dies before recording may be given it again, unmarked).
			if err := feed.Delivered(ctx, bus.Delivery{Position: b.Through, AsOf: b.AsOf}); err != nil {
				return
			}
			r.mu.Lock()
			r.all = append(r.all, b.Changes...)
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

// waitFor returns the records of session id once there are at least n.
func (r *reader) waitFor(t *testing.T, id string, n int) []bus.ChangeRecord {
	t.Helper()
	deadline := time.After(patience)
	for {
		var got []bus.ChangeRecord
		r.mu.Lock()
		for _, c := range r.all {
			if c.SessionID == id {
				got = append(got, c)
			}
		}
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			require.FailNowf(t, "feed", "session %s: %d of %d records after %v", id, len(got), n, patience)
		}
	}
}

// requireOnceInOrder checks that no change was yielded twice and that each
// session's changes came in increasing order.
func (r *reader) requireOnceInOrder(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[uint64]bool{}
	last := map[string]uint64{}
	for _, c := range r.all {
		require.False(t, seen[c.Seq], "change %d yielded twice", c.Seq)
		seen[c.Seq] = true
		require.Greater(t, c.Seq, last[c.SessionID], "session %s out of order", c.SessionID)
		last[c.SessionID] = c.Seq
		require.False(t, c.Repeat, "a cursor opened at the head repeats nothing")
	}
}

// records returns what r has read.
func (r *reader) records() []bus.ChangeRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}
