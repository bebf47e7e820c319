package bus

import (
	"context"
	"time"
)

// Store keeps sessions and service records. It is the storage contract the
// [Manager] consumes; package bus/storetest checks an implementation against
// it, and [MemoryStore] and kvstore.Store both pass.
//
// The contract:
//   - Sessions expire on their own at ExpiresAt (rounded up to whole
//     seconds); an expired session is not found, listed or looked up, and
//     leaves no index entry behind.
//   - CreateSession fails with [ErrConflict] when the id exists for the
//     same login (ids are fresh UUID v4s from the Manager, so a store may
//     rely on them being unique across logins), or when
//     a login fence (SetLoginFence) at or after the session's CreateTime
//     exists, and with [ErrTokenInUse] when a live session has the same
//     TokenFingerprint; it then writes no session. The fence check and the
//     session write are one atomic step, so a DeleteAllSessions that fences
//     and then lists never misses a create that passed the check.
//   - A create with a claim (Change.Claim, from ClaimLogin) commits only
//     while that claim is still the login's latest; otherwise it fails with
//     [ErrClaimLost] and writes no session. The claim check and the session
//     write are one atomic step. So a create that claims, then counts the
//     login's sessions, then creates, has counted every session that
//     committed before it, and every create that commits after it counts
//     it: the per-login cap holds across processes.
//   - An index entry left by a create that never wrote its session (a
//     crash between the two) blocks nothing for long: a create with the
//     same token succeeds once the entry is older than the store's bound
//     on a create's duration.
//   - UpdateSession is compare-and-set on s.Revision: it fails with
//     [ErrConflict] when the session changed since and with
//     [ErrSessionNotFound] when it was deleted or expired; it never brings a
//     deleted session back. LoginID, TokenFingerprint and CreateTime are
//     never changed by an update.
//   - Returned sessions carry their Revision and TokenFingerprint, never a
//     Token, and are the caller's to modify.
//   - Every write carries a [Change]. A store that offers a [ChangeFeed]
//     records it there, so that events are derived from the store itself;
//     such a store may refuse a write with [ErrEventsBehind] (see
//     ChangeFeed).
//
// Stores never see a token, only its fingerprint.
type Store interface {
	// CreateSession stores a new session and its login and token index
	// entries, and returns its revision.
	CreateSession(ctx context.Context, s *Session, c Change) (uint64, error)
	// GetSession returns the live session with that id or [ErrSessionNotFound].
	GetSession(ctx context.Context, id string) (*Session, error)
	// SessionIDByToken returns the id of the live session with that token
	// fingerprint, or [ErrSessionNotFound].
	SessionIDByToken(ctx context.Context, fingerprint string) (string, error)
	// UpdateSession writes s if s.Revision is still the latest and returns
	// the new revision. With c.Touch the expiry of the index entries moves
	// to s.ExpiresAt too.
	UpdateSession(ctx context.Context, s *Session, c Change) (uint64, error)
	// DeleteSession removes s and its index entries. Deleting what is
	// already gone is not an error.
	DeleteSession(ctx context.Context, s *Session, c Change) error
	// SessionIDsByLogin lists the ids of a login's live sessions without
	// scanning sessions of other logins.
	SessionIDsByLogin(ctx context.Context, loginID string) ([]string, error)

	// SetLoginFence makes CreateSession refuse sessions of loginID created
	// at or before at; the fence itself expires after ttl. It moves the
	// login's claim on too (see ClaimLogin).
	SetLoginFence(ctx context.Context, loginID string, at time.Time, ttl time.Duration) error
	// ClaimLogin moves the login's claim on and returns it (never 0), so
	// that a create carrying it in Change.Claim commits only if no other
	// claim or fence of the login came after. It fails with [ErrConflict]
	// when a fence at or after createTime (the session's CreateTime)
	// exists. The claim is kept at least ttl.
	ClaimLogin(ctx context.Context, loginID string, createTime time.Time, ttl time.Duration) (uint64, error)

	// CreateService stores a new service record, or fails with [ErrServiceExists].
	CreateService(ctx context.Context, r ServiceRecord) error
	// GetService returns a service record, with its Revision, or [ErrServiceNotFound].
	GetService(ctx context.Context, serviceID string) (ServiceRecord, error)
	// UpdateService replaces a service record if r.Revision is still its
	// latest: [ErrConflict] otherwise, [ErrServiceNotFound] when it is gone.
	UpdateService(ctx context.Context, r ServiceRecord) error
	// DeleteService removes a service record; a missing one is not an error.
	DeleteService(ctx context.Context, serviceID string) error
	// ListServices returns every service record, ordered by id.
	ListServices(ctx context.Context) ([]ServiceRecord, error)
}

// ChangeOp names the kind of change a write makes. Event types derive from it.
type ChangeOp string

// Change operations.
const (
	OpCreated   ChangeOp = "created"
	OpRefreshed ChangeOp = "refreshed"
	OpUpdated   ChangeOp = "updated"
	OpDeleted   ChangeOp = "deleted"
	// OpExpired is never written: a [ChangeFeed] reports it when a
	// session's time runs out.
	OpExpired ChangeOp = "expired"
)

// Reasons a session is deleted.
const (
	ReasonLogout    = "logout"
	ReasonLogoutAll = "logout_all"
	ReasonEvicted   = "evicted"
	ReasonRevoked   = "revoked"
)

// Change describes one write: what it does, which service did it and why.
type Change struct {
	Op      ChangeOp
	Service string   // the acting service, as the server asserted it
	Reason  string   // for deletes: logout, logout_all, evicted, revoked
	Keys    []string // attribute keys set or removed, for updates
	// Touch is set when the write moves the session's expiry, so the
	// store moves its index entries' expiry too.
	Touch bool
	// Claim, for creates, is a claim from ClaimLogin that must still be the
	// login's latest when the session is written; 0 for none.
	Claim uint64
}
