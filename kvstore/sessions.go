package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/retry"
)

// record is a session as stored: the session plus its token fingerprint,
// which never goes on the wire.
type record struct {
	bus.Session
	TokenFingerprint string `json:"token_fingerprint"`
}

func encodeSession(s *bus.Session) ([]byte, error) {
	r := record{Session: *s, TokenFingerprint: s.TokenFingerprint}
	r.Token = ""
	r.Revision = 0 // the stream sequence is the revision
	return json.Marshal(r)
}

func decodeSession(data []byte, rev uint64) (*bus.Session, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("kvstore: decode session: %w", err)
	}
	s := r.Session
	s.TokenFingerprint = r.TokenFingerprint
	s.Revision = rev
	if s.Attributes == nil {
		s.Attributes = map[string]string{}
	}
	return &s, nil
}

func rev(n uint64) *uint64 { return &n }

// CreateSession implements bus.Store. It writes the login and token index
// entries (create-only) and the session record, on the condition that the
// login's fence key has not changed since we last saw it (or, with a
// claim, is still at the claim). So a refused create never writes the
// record (no event announces it), and a DeleteAllSessions (fence, then
// list) never misses a record. Where the stream stages atomic batches
// cheaply, the three writes are one atomic batch (see createAtomic);
// otherwise they take two steps (see createInSteps).
func (st *Store) CreateSession(ctx context.Context, s *bus.Session, c bus.Change) (uint64, error) {
	started := time.Now()
	if _, err := st.admit(ctx, started); err != nil {
		return 0, fmt.Errorf("kvstore: create session: %w", err)
	}
	data, err := encodeSession(s)
	if err != nil {
		return 0, err
	}
	ttl := ttlUntil(s.ExpiresAt, started)
	w := createWrites{
		login: write{key: loginKey(s.LoginID, s.SessionID), ttl: ttl, expect: rev(0)},
		token: write{key: tokenKey(s.TokenFingerprint), data: []byte(s.SessionID), ttl: ttl, expect: rev(0)},
		record: write{key: sessionKey(s.SessionID), data: data, header: changeHeader(c, ""), ttl: st.recordTTL(ttl),
			expect: rev(c.Claim), expectKey: fenceKey(s.LoginID)},
	}
	if st.atomicCreate.Load() {
		r, err := st.createAtomic(ctx, s, c, w)
		if !errors.Is(err, errBatchRefused) {
			return r, err
		}
		// The stream refused the batch as such and wrote none of it.
	}
	return st.createInSteps(ctx, s, c, started, w)
}

// createWrites are the three writes of a create.
type createWrites struct {
	login, token, record write
}

// createInSteps writes the index entries first (create-only, at once) and
// the record last. The record is written only within half the orphan grace
// of the index writes, so an index entry older than the grace whose record
// is missing is a crash's leftover for sure.
func (st *Store) createInSteps(ctx context.Context, s *bus.Session, c bus.Change, started time.Time, w createWrites) (uint64, error) {
	index := []write{w.login, w.token}
	revs, errs := st.publishAll(ctx, index...)
	for i := range index {
		if errors.Is(errs[i], bus.ErrConflict) {
			// A key that had a value once keeps a marker for a while;
			// creating over a marker is allowed, over a live value is not.
			revs[i], errs[i] = st.createOverMarker(ctx, index[i])
		}
	}
	if err := errors.Join(errs...); err != nil {
		st.withdraw(ctx, index, revs, errs)
		if errors.Is(errs[1], bus.ErrConflict) {
			return 0, fmt.Errorf("kvstore: create session: %w", bus.ErrTokenInUse)
		}
		return 0, err
	}
	if time.Since(started) >= st.orphanGrace/2 {
		// Too slow: a create of the same token may already treat these
		// index entries as a crash's leftovers (see orphan).
		st.withdraw(ctx, index, revs, errs)
		return 0, fmt.Errorf("kvstore: create session: %w: index writes took over %v", bus.ErrUnavailable, st.orphanGrace/2)
	}
	record := w.record
	for attempt := 0; ; attempt++ {
		r, err := st.publish(ctx, record)
		if err == nil {
			return r, nil
		}
		if errors.Is(err, bus.ErrConflict) && attempt < 3 {
			// The fence key moved on: a fence, a claim, or a marker.
			var fenceSeq uint64
			if fenceSeq, err = st.fenceMoved(ctx, s, c); err == nil {
				record.expect = rev(fenceSeq)
				continue
			}
		}
		st.withdraw(ctx, index, revs, errs)
		return 0, err
	}
}

// fenceMoved is called when the login's fence key is no longer where a
// create expected it. It returns the fence key's revision to expect
// instead, or why the create must fail: bus.ErrConflict when a fence at or
// after the session's create time exists, bus.ErrClaimLost when the create
// carries a claim (another claim or fence came after it).
func (st *Store) fenceMoved(ctx context.Context, s *bus.Session, c bus.Change) (uint64, error) {
	fenceSeq, fence, err := st.fence(ctx, s.LoginID)
	switch {
	case err != nil:
		return 0, err
	case !fence.IsZero() && !s.CreateTime.After(fence):
		return 0, fmt.Errorf("kvstore: create session: %w: all sessions of the login were deleted meanwhile", bus.ErrConflict)
	case c.Claim != 0:
		return 0, fmt.Errorf("kvstore: create session: %w", bus.ErrClaimLost)
	}
	return fenceSeq, nil
}

// createOverMarker retries a create-only write when the key's last message
// is a delete, purge or expiry marker; over a live value it is a conflict.
func (st *Store) createOverMarker(ctx context.Context, w write) (uint64, error) {
	base, err := st.createBase(ctx, w.key)
	if err != nil {
		return 0, fmt.Errorf("kvstore: create %q: %w", w.key, err)
	}
	w.expect = rev(base)
	return st.publish(ctx, w)
}

// createBase returns the revision a create-only write of key must expect:
// 0 when the key is empty, the last revision when that is a delete, purge
// or expiry marker or a crash's leftover (see orphan). Over a live value it
// is bus.ErrConflict.
func (st *Store) createBase(ctx context.Context, key string) (uint64, error) {
	last, err := st.lastMsg(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil // never written, or the marker expired meanwhile
	case err != nil:
		return 0, err
	case !tombstone(last.Header) && !st.orphan(ctx, key, last):
		return 0, bus.ErrConflict
	}
	return last.Sequence, nil
}

// orphan reports whether a live token index entry was left by a create
// that never wrote its session (the process died between the index writes
// and the record write): its session is missing and the entry is older than
// the orphan grace, past which no create in flight writes its record.
func (st *Store) orphan(ctx context.Context, key string, entry *jetstream.RawStreamMsg) bool {
	if !strings.HasPrefix(key, prefixToken) || time.Since(entry.Time) < st.orphanGrace {
		return false
	}
	id := string(entry.Data)
	if bus.ValidateSessionID(id) != nil {
		return false
	}
	_, err := st.liveMsg(ctx, sessionKey(id))
	return errors.Is(err, jetstream.ErrMsgNotFound)
}

// withdraw purges the writes of a failed create that did land.
func (st *Store) withdraw(ctx context.Context, ws []write, revs []uint64, errs []error) {
	ctx = context.WithoutCancel(ctx)
	for i, w := range ws {
		if errs[i] != nil {
			continue
		}
		_, _ = st.publish(ctx, write{key: w.key, purge: true, ttl: st.markerTTL, expect: rev(revs[i])})
	}
}

// GetSession implements bus.Store. It reads the record with its headers
// (see lastMsg) and keeps its change log for the next write (see
// recordCache).
func (st *Store) GetSession(ctx context.Context, id string) (*bus.Session, error) {
	msg, err := st.lastMsg(ctx, sessionKey(id))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("kvstore: get session: %w", bus.ErrSessionNotFound)
		}
		return nil, fmt.Errorf("kvstore: get session: %w", err)
	}
	if tombstone(msg.Header) {
		return nil, fmt.Errorf("kvstore: get session: %w", bus.ErrSessionNotFound)
	}
	s, err := st.decodeRecord(id, msg)
	if err != nil {
		return nil, err
	}
	if !s.ExpiresAt.After(time.Now()) { // the record outlives the session (recordTTL)
		return nil, fmt.Errorf("kvstore: get session: %w", bus.ErrSessionNotFound)
	}
	return s, nil
}

// decodeRecord returns the session a stored record holds: a copy of the
// cached one when that is at the record's revision, else decoded and
// cached with its change log.
func (st *Store) decodeRecord(id string, msg *jetstream.RawStreamMsg) (*bus.Session, error) {
	if s, ok := st.records.get(id, msg.Sequence); ok {
		return s, nil
	}
	s, err := decodeSession(msg.Data, msg.Sequence)
	if err != nil {
		return nil, err
	}
	st.records.put(s, readLog(msg.Header, msg.Sequence, msg.Time))
	return s, nil
}

// recordTTL is the TTL of a session record whose session ends after ttl:
// at least twice MaxEventLag, so that a record, and the change log it
// carries, outlives any lag the store admits writes under (the feed's
// reader reads it after its session ended, if need be). The session still
// ends at its ExpiresAt: reads check it, and its expiry is announced from
// the login index entry, whose TTL is the session's.
func (st *Store) recordTTL(ttl time.Duration) time.Duration {
	return max(ttl, 2*st.maxEventLag)
}

// changeLogOf returns the change log of revision rev of a session, which
// the write replacing it extends: cached by the read that preceded the
// write, or read now. A session at another revision is bus.ErrConflict.
func (st *Store) changeLogOf(ctx context.Context, id string, rev uint64) (changeLog, error) {
	if l, ok := st.records.changeLog(id, rev); ok {
		return l, nil
	}
	msg, err := st.liveMsg(ctx, sessionKey(id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return changeLog{}, bus.ErrSessionNotFound
	case err != nil:
		return changeLog{}, err
	case msg.Sequence != rev:
		return changeLog{}, bus.ErrConflict
	}
	return readLog(msg.Header, msg.Sequence, msg.Time), nil
}

// nextLog is the change log for a write making change c to revision rev of
// a session, or why the write must not happen (bus.ErrEventsBehind, a
// conflict). A delete is never held back: a logout must always take
// effect, its message is never read again (so its log has no bound), and
// its marker outlives any lag the store admits (MarkerTTL). A touch is not
// held back by the reader's lag, so that sessions in use stay alive while
// the relay is down: its record lives the session's idle timeout.
func (st *Store) nextLog(ctx context.Context, id string, rev uint64, now time.Time, c bus.Change) (string, error) {
	del := c.Op == bus.OpDeleted
	d := st.delivered.get()
	if !del && c.Op != bus.OpRefreshed {
		var err error
		if d, err = st.admit(ctx, now); err != nil {
			return "", err
		}
	}
	l, err := st.changeLogOf(ctx, id, rev)
	if err != nil {
		return "", err
	}
	return l.next(d, del)
}

// SessionIDByToken implements bus.Store.
func (st *Store) SessionIDByToken(ctx context.Context, fingerprint string) (string, error) {
	msg, err := st.liveMsg(ctx, tokenKey(fingerprint))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("kvstore: look up token: %w", bus.ErrSessionNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("kvstore: look up token: %w", err)
	}
	return string(msg.Data), nil
}

// UpdateSession implements bus.Store. The session is rewritten with its
// remaining TTL (a write without one would make the key immortal). On a
// touch, the index entries are rewritten with the new TTL on the condition
// that the session is still at the revision just written, so a touch racing
// a delete can never bring an index entry back.
func (st *Store) UpdateSession(ctx context.Context, s *bus.Session, c bus.Change) (uint64, error) {
	now := time.Now()
	if !s.ExpiresAt.After(now) {
		return 0, fmt.Errorf("kvstore: update session: %w", bus.ErrSessionNotFound)
	}
	log, err := st.nextLog(ctx, s.SessionID, s.Revision, now, c)
	if err != nil {
		return 0, fmt.Errorf("kvstore: update session: %w", err)
	}
	data, err := encodeSession(s)
	if err != nil {
		return 0, err
	}
	ttl := ttlUntil(s.ExpiresAt, now)
	newRev, err := st.publish(ctx, write{key: sessionKey(s.SessionID), data: data, header: changeHeader(c, log), ttl: st.recordTTL(ttl), expect: rev(s.Revision)})
	if errors.Is(err, bus.ErrConflict) {
		// Gone (deleted or expired) is not a conflict: the caller must not retry.
		if _, gerr := st.liveMsg(ctx, sessionKey(s.SessionID)); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("kvstore: update session: %w", bus.ErrSessionNotFound)
		}
	}
	if err != nil {
		return 0, err
	}
	if c.Touch {
		sk := sessionKey(s.SessionID)
		_, errs := st.publishAll(ctx,
			write{key: loginKey(s.LoginID, s.SessionID), ttl: ttl, expect: rev(newRev), expectKey: sk},
			write{key: tokenKey(s.TokenFingerprint), data: []byte(s.SessionID), ttl: ttl, expect: rev(newRev), expectKey: sk},
		)
		for _, err := range errs {
			// A conflict means the session changed again meanwhile; that
			// writer's touch (or delete) governs the index entries.
			if err != nil && !errors.Is(err, bus.ErrConflict) {
				return 0, err
			}
		}
	}
	return newRev, nil
}

// DeleteSession implements bus.Store. The record is purged under
// compare-and-set, so a session deleted twice concurrently yields one
// delete message (one event); index entries are purged after. Purges carry
// a marker TTL so nothing is left behind forever.
func (st *Store) DeleteSession(ctx context.Context, s *bus.Session, c bus.Change) error {
	c.Op = bus.OpDeleted
	cur := s.Revision
	for {
		if !s.ExpiresAt.After(time.Now()) {
			return nil // it expired: its login index entry's expiry announces it
		}
		log, err := st.nextLog(ctx, s.SessionID, cur, time.Now(), c)
		if errors.Is(err, bus.ErrSessionNotFound) {
			return nil // someone else deleted it (and purges its index entries), or it expired
		}
		if err == nil {
			h := changeHeader(c, log)
			h.Set(headerLogin, encodeLogin(s.LoginID))
			_, err = st.publish(ctx, write{key: sessionKey(s.SessionID), header: h, purge: true, ttl: st.markerTTL, expect: rev(cur)})
			if err == nil {
				break
			}
		}
		if !errors.Is(err, bus.ErrConflict) {
			return fmt.Errorf("kvstore: delete session: %w", err)
		}
		fresh, gerr := st.GetSession(ctx, s.SessionID)
		if errors.Is(gerr, bus.ErrSessionNotFound) {
			return nil // someone else deleted it, or it expired
		}
		if gerr != nil {
			return fmt.Errorf("kvstore: delete session: %w", gerr)
		}
		s, cur = fresh, fresh.Revision
	}
	st.records.drop(s.SessionID)
	if _, err := st.publish(ctx, write{key: loginKey(s.LoginID, s.SessionID), purge: true, ttl: st.markerTTL}); err != nil {
		return err
	}
	// The token entry may already belong to a newer session with the same
	// token; purge it only while it points at this one.
	e, err := st.liveMsg(ctx, tokenKey(s.TokenFingerprint))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kvstore: delete token entry: %w", err)
	}
	if string(e.Data) != s.SessionID {
		return nil
	}
	_, err = st.publish(ctx, write{key: tokenKey(s.TokenFingerprint), purge: true, ttl: st.markerTTL, expect: rev(e.Sequence)})
	if err != nil && !errors.Is(err, bus.ErrConflict) {
		return err
	}
	return nil
}

// ClaimLogin implements bus.Store: the claim is a new revision of the
// login's fence key, written under compare-and-set so that it keeps the
// fence time a DeleteAllSessions put there.
func (st *Store) ClaimLogin(ctx context.Context, loginID string, createTime time.Time, ttl time.Duration) (uint64, error) {
	var claim uint64
	err := retry.CompareAndSet(ctx, errClaimRaced, maxClaimAttempts, func() error {
		seq, fence, err := st.fence(ctx, loginID)
		if err != nil {
			return err
		}
		if !fence.IsZero() && !createTime.After(fence) {
			return fmt.Errorf("%w: all sessions of the login were deleted meanwhile", bus.ErrConflict)
		}
		var data []byte
		if !fence.IsZero() {
			data = []byte(fence.UTC().Format(time.RFC3339Nano))
		}
		now := time.Now()
		claim, err = st.publish(ctx, write{key: fenceKey(loginID), data: data, ttl: ttlUntil(now.Add(ttl), now), expect: rev(seq)})
		if errors.Is(err, bus.ErrConflict) {
			return fmt.Errorf("%w: %w", errClaimRaced, err)
		}
		return err
	})
	switch {
	case err == nil:
		return claim, nil
	case ctx.Err() != nil && !errors.Is(err, bus.ErrConflict):
		return 0, fmt.Errorf("kvstore: claim login: %w: %w", bus.ErrUnavailable, err)
	}
	return 0, fmt.Errorf("kvstore: claim login: %w", err)
}

// errClaimRaced: another claim or fence of the login came between reading
// its fence key and writing the claim; ClaimLogin tries again.
var errClaimRaced = errors.New("kvstore: claim raced")

// maxClaimAttempts bounds ClaimLogin's compare-and-set retries.
const maxClaimAttempts = 100

// SetLoginFence implements bus.Store.
func (st *Store) SetLoginFence(ctx context.Context, loginID string, at time.Time, ttl time.Duration) error {
	_, err := st.publish(ctx, write{key: fenceKey(loginID), data: []byte(at.UTC().Format(time.RFC3339Nano)), ttl: ttlUntil(time.Now().Add(ttl), time.Now())})
	return err
}

// fence returns the last sequence on the login's fence key and the fence
// time it holds, zero when the key is empty or holds a marker.
func (st *Store) fence(ctx context.Context, loginID string) (uint64, time.Time, error) {
	msg, err := st.lastMsg(ctx, fenceKey(loginID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("kvstore: read fence: %w", err)
	}
	if len(msg.Data) == 0 || tombstone(msg.Header) {
		return msg.Sequence, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(msg.Data))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("kvstore: read fence: %w", err)
	}
	return msg.Sequence, t, nil
}
