package kvstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

func TestSmoke(t *testing.T) {
	s := natstest.RunServer(t)
	js := natstest.JetStream(t, s)
	ctx := context.Background()
	st, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.NoError(t, err)
	m, err := bus.New(st, "svc-a", 2*time.Second, bus.WithTouchInterval(time.Second))
	require.NoError(t, err)
	sess, err := m.CreateSession(ctx, "user.1 *>", "tok")
	require.NoError(t, err)
	_, err = m.CreateSession(ctx, "user.1 *>", "tok")
	require.ErrorIs(t, err, bus.ErrTokenInUse)
	require.NoError(t, m.SetAttribute(ctx, sess.SessionID, "role", "admin"))
	got, err := m.GetSessionByToken(ctx, "tok")
	require.NoError(t, err)
	require.Equal(t, "admin", got.Attributes["role"])
	list, err := m.SessionsByLogin(ctx, "user.1 *>")
	require.NoError(t, err)
	require.Len(t, list, 1)
	time.Sleep(1100 * time.Millisecond)
	_, err = m.RefreshSession(ctx, sess.SessionID)
	require.NoError(t, err)
	stale := got.Clone()
	stale.Attributes["x"] = "y"
	_, err = m.UpdateSession(ctx, stale)
	require.ErrorIs(t, err, bus.ErrConflict)
	require.NoError(t, m.DeleteSession(ctx, sess.SessionID))
	_, err = m.UpdateSession(ctx, got)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	s2, err := m.CreateSession(ctx, "user.1 *>", "tok")
	require.NoError(t, err)
	n, err := m.DeleteAllSessions(ctx, "user.1 *>")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = m.GetSession(ctx, s2.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}
