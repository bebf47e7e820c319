package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// defaultOutboxLimit bounds the changes a MemoryStore keeps for its feed's
// reader: past it, writes are refused with ErrEventsBehind.
const defaultOutboxLimit = 100_000

// feedQuiet is how long Next waits before it reports a quiet spell with an
// empty batch.
const feedQuiet = time.Second

// memFeed is a MemoryStore's outbox: the changes its reader has not
// delivered, in order. Guarded by the store's mu.
type memFeed struct {
	outbox    []ChangeRecord
	limit     int
	delivered Delivery
	reader    bool          // Delivered was called: a reader depends on the outbox
	wake      chan struct{} // closed and replaced on every record
}

func changeRecord(s *Session, ch Change, now time.Time) ChangeRecord {
	return ChangeRecord{
		Seq: s.Revision, Time: now, Op: ch.Op, SessionID: s.SessionID, LoginID: s.LoginID,
		ServiceID: ch.Service, Reason: ch.Reason, Keys: slices.Clone(ch.Keys),
	}
}

// record appends r to the outbox. Without a reader the outbox is a ring
// that forgets its oldest changes. Callers hold mu.
func (st *MemoryStore) record(r ChangeRecord) {
	f := &st.feed
	f.outbox = append(f.outbox, r)
	if !f.reader && len(f.outbox) > f.limit {
		f.outbox = slices.Delete(f.outbox, 0, len(f.outbox)-f.limit)
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

// admit refuses a write when the outbox is full. Callers hold mu.
func (st *MemoryStore) admit() error {
	if f := &st.feed; f.reader && len(f.outbox) >= f.limit {
		return fmt.Errorf("%w: %d changes not delivered yet", ErrEventsBehind, len(f.outbox))
	}
	return nil
}

// expireDue expires every session whose time ran out and returns the
// earliest expiry still ahead (zero when none). Callers hold mu.
func (st *MemoryStore) expireDue(now time.Time) time.Time {
	var next time.Time
	for _, s := range st.sessions {
		switch {
		case s.expired(now):
			st.expire(s, now)
		case next.IsZero() || s.ExpiresAt.Before(next):
			next = s.ExpiresAt
		}
	}
	return next
}

// Follow implements [ChangeFeed].
func (st *MemoryStore) Follow(_ context.Context, after uint64) (ChangeCursor, error) {
	return &memCursor{st: st, pos: after}, nil
}

// Head implements [ChangeFeed].
func (st *MemoryStore) Head(context.Context) (uint64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rev, nil
}

// Delivered implements [ChangeFeed].
func (st *MemoryStore) Delivered(_ context.Context, d Delivery) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := &st.feed
	f.reader = true
	if d.Position < f.delivered.Position {
		return nil // a late report of a reader that was replaced
	}
	f.delivered = d
	n := sort.Search(len(f.outbox), func(i int) bool { return f.outbox[i].Seq > d.Position })
	f.outbox = slices.Delete(f.outbox, 0, n)
	return nil
}

// StartDelivery implements [ChangeFeed].
func (st *MemoryStore) StartDelivery(ctx context.Context, d Delivery) (Delivery, error) {
	st.mu.Lock()
	known, cur := st.feed.reader, st.feed.delivered
	st.mu.Unlock()
	if known {
		return cur, nil
	}
	return d, st.Delivered(ctx, d)
}

// LastDelivered implements [ChangeFeed].
func (st *MemoryStore) LastDelivered(context.Context) (Delivery, bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.feed.delivered, st.feed.reader, nil
}

// memCursor reads a MemoryStore's outbox. A MemoryStore yields no Repeat
// changes: it never keeps a change past its delivery.
type memCursor struct {
	st  *MemoryStore
	pos uint64
}

// Next implements [ChangeCursor]. It expires sessions whose time ran out,
// so expiries are reported on time without a goroutine in the store.
func (c *memCursor) Next(ctx context.Context) (ChangeBatch, error) {
	quiet := time.NewTimer(feedQuiet)
	defer quiet.Stop()
	for {
		st := c.st
		st.mu.Lock()
		now := st.now()
		nextExpiry := st.expireDue(now)
		out := st.feed.outbox
		i := sort.Search(len(out), func(i int) bool { return out[i].Seq > c.pos })
		n := min(len(out)-i, MaxChangeBatch)
		if n > 0 {
			b := ChangeBatch{Changes: slices.Clone(out[i : i+n]), Through: out[i+n-1].Seq, AsOf: now}
			if i+n < len(out) {
				b.AsOf = out[i+n].Time
			}
			st.mu.Unlock()
			c.pos = b.Through
			return b, nil
		}
		wake := st.feed.wake
		st.mu.Unlock()
		if err := c.wait(ctx, wake, quiet.C, nextExpiry.Sub(now)); err != nil {
			if errors.Is(err, errQuiet) {
				return ChangeBatch{Through: c.pos, AsOf: now}, nil
			}
			return ChangeBatch{}, err
		}
	}
}

// errQuiet ends a wait on the quiet timer.
var errQuiet = errors.New("quiet")

// wait blocks until a change is recorded, the next expiry is due
// (untilExpiry > 0), the quiet timer fires or ctx ends.
func (c *memCursor) wait(ctx context.Context, wake <-chan struct{}, quiet <-chan time.Time, untilExpiry time.Duration) error {
	var expiry <-chan time.Time
	if untilExpiry > 0 {
		t := time.NewTimer(untilExpiry)
		defer t.Stop()
		expiry = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-quiet:
		return errQuiet
	case <-wake:
	case <-expiry:
	}
	return nil
}

// Stop implements [ChangeCursor].
func (c *memCursor) Stop() {}
