package bus

import (
	"context"
	"errors"
	"time"
)

// ReadCache is a coherent copy of sessions that a [Manager] answers reads
// from before its store (package sessioncache has one). Its Get must only
// answer while it is known current; the Manager drops a session's copy
// itself when it writes the session, and tells other processes through
// the [WithChangeNotifier] function.
type ReadCache interface {
	// Get returns a copy of session id, if held and live at now.
	Get(id string, now time.Time) (*Session, bool)
	// Begin is taken before a store read whose answer goes to Fill.
	Begin(id string) ReadTicket
	// Fill stores s, read with ticket t, unless s changed meanwhile.
	Fill(t ReadTicket, s *Session, token string)
	// Invalidate drops session id.
	Invalidate(id string)
}

// ReadTicket is a [ReadCache]'s mark of when a read began.
type ReadTicket struct {
	Epoch, Gen uint64
	OK         bool
}

// WithReadCache answers GetSession, GetSessionByToken, GetAttribute and
// the sessions of SessionsByLogin from c when it holds them (writes always
// read the store). Touches still happen once per touch interval.
func WithReadCache(c ReadCache) Option {
	return func(o *options) error {
		o.cache = c
		return nil
	}
}

// WithChangeNotifier calls notify with the id of every session this
// Manager wrote or deleted (or may have: a write whose outcome is unknown
// counts), after the store's answer and before the Manager's method
// returns, so that caches elsewhere drop it before the caller is told.
func WithChangeNotifier(notify func(ids ...string)) Option {
	return func(o *options) error {
		o.notify = notify
		return nil
	}
}

// loadForRead is load through the read cache: what reads use; writes
// load from the store, since a compare-and-set needs the latest revision.
func (m *Manager) loadForRead(ctx context.Context, id string) (*Session, error) {
	c := m.o.cache
	if c == nil {
		return m.load(ctx, id)
	}
	if s, ok := c.Get(id, m.o.now()); ok {
		return s, nil
	}
	t := c.Begin(id)
	s, err := m.load(ctx, id)
	if err == nil {
		c.Fill(t, s, "")
	}
	return s, err
}

// changed drops session id from this process's cache and tells others,
// unless err says the store wrote nothing. A conflict wrote nothing, but
// says our copy is old.
func (m *Manager) changed(id string, err error) {
	if m.o.cache != nil && (err == nil || !errors.Is(err, ErrEventsBehind)) {
		m.o.cache.Invalidate(id)
	}
	if err != nil && (errors.Is(err, ErrConflict) || errors.Is(err, ErrEventsBehind)) {
		return
	}
	if err != nil && m.o.notify != nil && !errors.Is(err, ErrSessionNotFound) {
		// The outcome is unknown: the write may still commit after this
		// notice went out, and a read between would cache the old state.
		// Announce it again once any such write has committed or failed.
		time.AfterFunc(m.o.requestTimeout, func() { m.changed(id, nil) })
	}
	if m.o.notify != nil {
		m.o.notify(id)
	}
}

// notifyingStore is the Manager's store when caches must hear of writes.
type notifyingStore struct {
	Store
	m *Manager
}

func (s notifyingStore) UpdateSession(ctx context.Context, sess *Session, c Change) (uint64, error) {
	rev, err := s.Store.UpdateSession(ctx, sess, c)
	s.m.changed(sess.SessionID, err)
	return rev, err
}

func (s notifyingStore) DeleteSession(ctx context.Context, sess *Session, c Change) error {
	err := s.Store.DeleteSession(ctx, sess, c)
	s.m.changed(sess.SessionID, err)
	return err
}
