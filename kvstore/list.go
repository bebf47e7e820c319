package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/session-bus/session-bus/bus"
)

// SessionIDsByLogin implements bus.Store. On a single replica it is one
// batched direct get of the login's index keys (see direct.go), which the
// server answers from its subject index: the key filter holds the login's
// base64url token literally, so no other login's key is looked at. On a
// replicated bucket, or for a login with more index keys than one answer
// holds, it is a filtered key listing, which the stream leader answers.
func (st *Store) SessionIDsByLogin(ctx context.Context, loginID string) ([]string, error) {
	if st.direct != nil {
		msgs, err := st.direct.lastOf(ctx, st.subjPre+loginFilter(loginID))
		switch {
		case err == nil:
			ids := make([]string, 0, len(msgs))
			for _, m := range msgs {
				if !tombstone(m.Header) {
					ids = append(ids, sessionIDFromLoginKey(m.Header.Get(hdrSubject)))
				}
			}
			return ids, nil
		case !errors.Is(err, errDirectIncomplete):
			return nil, fmt.Errorf("kvstore: list sessions: %w", err)
		}
	}
	return st.listKeys(ctx, loginID)
}

// listKeys lists the login's live index keys with a filtered key listing:
// a short-lived consumer of the stream.
func (st *Store) listKeys(ctx context.Context, loginID string) ([]string, error) {
	lister, err := st.sessions.ListKeysFiltered(ctx, loginFilter(loginID))
	if err != nil {
		return nil, fmt.Errorf("kvstore: list sessions: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var ids []string
	for key := range lister.Keys() {
		ids = append(ids, sessionIDFromLoginKey(key))
	}
	return ids, nil
}

// GetSessions returns the live sessions among ids, in the order of ids;
// missing, deleted and expired ones, and ids that are no session id, are
// left out. Each is read and checked as GetSession reads and checks one.
// On a single replica up to 1,024 sessions are read in one round trip (a
// batched direct get); on a replicated bucket each is read from the stream
// leader, eight at a time. Most callers list a login's sessions with
// SessionIDsByLogin first.
func (st *Store) GetSessions(ctx context.Context, ids []string) ([]*bus.Session, error) {
	seen := make(map[string]bool, len(ids))
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		// Only a UUID: an id with a wildcard must not become a filter.
		if !seen[id] && bus.ValidateSessionID(id) == nil {
			seen[id] = true
			valid = append(valid, id)
		}
	}
	found := make(map[string]*bus.Session, len(valid))
	for chunk := range slices.Chunk(valid, maxDirectSubjects) {
		if err := st.getChunk(ctx, chunk, found); err != nil {
			return nil, fmt.Errorf("kvstore: get sessions: %w", err)
		}
	}
	out := make([]*bus.Session, 0, len(found))
	for _, id := range valid {
		if s, ok := found[id]; ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// getChunk reads the live sessions among ids into found.
func (st *Store) getChunk(ctx context.Context, ids []string, found map[string]*bus.Session) error {
	if st.direct == nil {
		return st.getEach(ctx, ids, found)
	}
	filters := make([]string, len(ids))
	for i, id := range ids {
		filters[i] = st.subjPre + sessionKey(id)
	}
	msgs, err := st.direct.lastOf(ctx, filters...)
	if errors.Is(err, errDirectIncomplete) { // large records: over the server's byte bound
		return st.getEach(ctx, ids, found)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	for _, m := range msgs {
		msg, err := rawMsg(m)
		if err != nil {
			return err
		}
		id, ok := strings.CutPrefix(msg.Subject, st.subjPre+prefixSession)
		if !ok || tombstone(msg.Header) {
			continue
		}
		s, err := st.decodeRecord(id, msg)
		if err != nil {
			return err
		}
		if s.ExpiresAt.After(now) {
			found[id] = s
		}
	}
	return nil
}

// getEach reads the live sessions among ids one by one, eight at a time.
func (st *Store) getEach(ctx context.Context, ids []string, found map[string]*bus.Session) error {
	out := make([]*bus.Session, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = st.GetSession(ctx, id)
		})
	}
	wg.Wait()
	for i, s := range out {
		switch {
		case errs[i] == nil:
			found[ids[i]] = s
		case !errors.Is(errs[i], bus.ErrSessionNotFound):
			return errs[i]
		}
	}
	return nil
}
