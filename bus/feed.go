package bus

import (
	"context"
	"time"
)

// ChangeFeed is what a [Store] that records its changes offers their
// reader (the event relay of package events): every change, in order, from
// a position on, and a place to record how far the reader has delivered.
// [MemoryStore] and kvstore.Store offer one; package bus/storetest checks
// it.
//
// The contract:
//   - Every acknowledged write (a create, update or delete that returned
//     no error) and every expiry is one [ChangeRecord]. A cursor opened
//     after a position yields each change after that position exactly once,
//     and the changes of one session in the order they were made.
//   - A store keeps every change its reader has not delivered yet. When it
//     could keep no more (too many undelivered changes of one session, or
//     the reader is further behind than the store's bound), it refuses a
//     create or update with [ErrEventsBehind] and writes nothing, rather
//     than lose a change. A delete is never refused: a logout must always
//     take effect. Until the first Delivered call no reader is known, and
//     a store keeps what it can without refusing.
//   - A cursor may also yield changes at or before the position it was
//     opened after, marked Repeat: changes a reader that stopped there may
//     or may not have delivered. The reader tells which (the event relay
//     looks at the events it stored).
type ChangeFeed interface {
	// Follow opens a cursor over the changes after position.
	Follow(ctx context.Context, after uint64) (ChangeCursor, error)
	// Head returns the position of the latest change: where a reader
	// that starts now and must not replay history opens its cursor.
	Head(ctx context.Context) (uint64, error)
	// Delivered records d: every change up to d.Position is delivered.
	// The store drops what it kept for them, and measures the reader's
	// lag by d.AsOf.
	Delivered(ctx context.Context, d Delivery) error
	// LastDelivered returns the latest Delivery recorded; ok is false when
	// none was. It is where a reader taking over resumes.
	LastDelivered(ctx context.Context) (d Delivery, ok bool, err error)
	// StartDelivery records d only when no delivery is recorded yet, and
	// returns the one recorded: a first reader's start, so that two readers
	// starting at once agree and neither moves the other's position on.
	StartDelivery(ctx context.Context, d Delivery) (Delivery, error)
}

// MaxChangeBatch is the most changes a ChangeBatch of bus's and kvstore's
// feeds holds, except that a kvstore change log travels whole with its
// record.
const MaxChangeBatch = 1024

// ChangeCursor yields a [ChangeFeed]'s changes.
type ChangeCursor interface {
	// Next waits for changes and returns the next batch. A batch holds at
	// least one change, except after a quiet spell (about a second), when
	// an empty batch reports that the cursor is still caught up.
	Next(ctx context.Context) (ChangeBatch, error)
	// Stop releases the cursor.
	Stop()
}

// ChangeBatch is one read of a [ChangeCursor].
type ChangeBatch struct {
	Changes []ChangeRecord
	// Through is the position read through: once these changes and all
	// earlier batches' are delivered, every change up to Through is.
	Through uint64
	// AsOf is a time before which every change the store recorded is in
	// this batch or an earlier one.
	AsOf time.Time
}

// Delivery is how far a change feed's reader has delivered.
type Delivery struct {
	// Position: every change at or before it is delivered.
	Position uint64 `json:"position"`
	// AsOf: every change recorded before this time is delivered.
	AsOf time.Time `json:"as_of"`
	// Mark is the reader's own, opaque to the store: where its output
	// stood when it recorded this (the event relay: the events stream's
	// last sequence, so that a successor knows what was published after).
	Mark uint64 `json:"mark,omitempty"`
}

// ChangeRecord is one change of one session, as a [ChangeFeed] yields it.
// It carries ids, never a token, a fingerprint or an attribute value.
type ChangeRecord struct {
	// Seq is the change's position in the store: unique and increasing in
	// the order changes were made. After a create or an update it is the
	// session's Revision.
	Seq uint64
	// Time is when the store recorded the change.
	Time time.Time
	// Op is what happened: created, refreshed, updated, deleted or expired.
	Op        ChangeOp
	SessionID string
	LoginID   string
	// ServiceID is the acting service; empty for an expiry.
	ServiceID string
	// Reason is set on deletes: logout, logout_all, evicted, revoked.
	Reason string
	// Keys names the attribute keys an update set or removed.
	Keys []string
	// Repeat marks a change at or before the position the cursor was
	// opened after: an earlier reader may have delivered it already.
	Repeat bool
}
