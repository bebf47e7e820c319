package bus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notices records what a Manager announced.
type notices struct {
	mu  sync.Mutex
	ids []string
}

func (n *notices) notify(ids ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids = append(n.ids, ids...)
}

func (n *notices) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.ids
	n.ids = nil
	return out
}

// Every write of a session is announced before the call returns; a read,
// a refused write and a create are not.
func TestManager_AnnouncesEveryWrite(t *testing.T) {
	var n notices
	m, _, _ := newTestManager(t, time.Hour, WithChangeNotifier(n.notify))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	assert.Empty(t, n.take(), "a create replaces no cached copy")

	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "k", "v"))
	assert.Equal(t, []string{s.SessionID}, n.take())
	_, err = m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Empty(t, n.take(), "a read with no touch due writes nothing")
	_, err = m.UpdateSession(ctx, &Session{SessionID: s.SessionID, Attributes: map[string]string{}, Revision: 1})
	require.ErrorIs(t, err, ErrConflict)
	assert.Empty(t, n.take(), "a refused write changed nothing")
	_, err = m.RefreshSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, []string{s.SessionID}, n.take())
	require.NoError(t, m.DeleteSession(ctx, s.SessionID))
	assert.Equal(t, []string{s.SessionID}, n.take())
	require.NoError(t, m.DeleteSession(ctx, s.SessionID))
	assert.Equal(t, []string{s.SessionID}, n.take(), "a delete of what is gone is announced again: an earlier one may have timed out and committed late")

	a, err := m.CreateSession(ctx, "all", "ta")
	require.NoError(t, err)
	b, err := m.CreateSession(ctx, "all", "tb")
	require.NoError(t, err)
	_, err = m.DeleteAllSessions(ctx, "all")
	require.NoError(t, err)
	got := n.take()
	slices.Sort(got)
	want := []string{a.SessionID, b.SessionID}
	slices.Sort(want)
	assert.Equal(t, want, got)
}

// unknownOutcome fails every update with an error that is no refusal: the
// write may have committed.
type unknownOutcome struct{ Store }

func (s unknownOutcome) UpdateSession(context.Context, *Session, Change) (uint64, error) {
	return 0, errors.New("timeout")
}

// A write whose outcome is unknown is announced at once and again after
// the request timeout, when a late commit has happened for sure.
func TestManager_AnnouncesUnknownOutcomesTwice(t *testing.T) {
	var n notices
	mem := NewMemoryStore()
	m, err := New(unknownOutcome{mem}, "svc", time.Hour, WithChangeNotifier(n.notify), WithRequestTimeout(100*time.Millisecond))
	require.NoError(t, err)
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	require.Error(t, m.SetAttribute(ctx, s.SessionID, "k", "v"))
	first := len(n.take())
	assert.GreaterOrEqual(t, first, 1)
	require.Eventually(t, func() bool { return len(n.take()) > 0 }, 10*time.Second, 10*time.Millisecond)
}

// TouchSessions touches sessions from the store and names the missing.
func TestManager_TouchSessions(t *testing.T) {
	m, _, clock := newTestManager(t, 10*time.Second)
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	clock.advance(5 * time.Second)
	gone := "00000000-0000-4000-8000-000000000000"
	missing, err := m.TouchSessions(ctx, []string{s.SessionID, gone})
	require.NoError(t, err)
	assert.Equal(t, []string{gone}, missing)
	got, err := m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.After(s.ExpiresAt), "the touch slid the idle timeout")

	_, err = m.TouchSessions(ctx, []string{"*"})
	require.ErrorIs(t, err, ErrInvalidInput)
	_, err = m.TouchSessions(ctx, make([]string, MaxTouchBatch+1))
	require.ErrorIs(t, err, ErrInvalidInput)
}
