package kvstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestStore_OrphanIndexEntriesDoNotBlockCreates: a bus process that died
// between a create's index writes and its record write leaves a token entry
// whose session never existed. A new create of that token is refused only
// while a create could still be in flight (the orphan grace), then succeeds.
func TestStore_OrphanIndexEntriesDoNotBlockCreates(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.OrphanGrace = 500 * time.Millisecond
	st, err := New(context.Background(), natstest.JetStream(t, natstest.RunServer(t)), cfg)
	require.NoError(t, err)
	m, err := bus.New(st, "svc", time.Minute)
	require.NoError(t, err)
	ctx := context.Background()

	// What the dead process left: both index entries, no record.
	const deadID = "0b7e3c52-3b1e-4e7a-9d2c-0a1b2c3d4e5f"
	fp := bus.TokenFingerprint(nil, "tok")
	for _, w := range []write{
		{key: loginKey("u", deadID), ttl: time.Minute, expect: rev(0)},
		{key: tokenKey(fp), data: []byte(deadID), ttl: time.Minute, expect: rev(0)},
	} {
		_, err := st.publish(ctx, w)
		require.NoError(t, err)
	}
	_, err = m.CreateSession(ctx, "u", "tok")
	require.ErrorIs(t, err, bus.ErrTokenInUse, "within the grace the writer may still be alive")

	var s *bus.Session
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, err = m.CreateSession(ctx, "u", "tok")
		require.NoError(c, err)
	}, natstest.Patience, 100*time.Millisecond, "past the grace the orphan is taken over")
	got, err := m.GetSessionByToken(ctx, "tok")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, got.SessionID)
	live, err := m.SessionsByLogin(ctx, "u")
	require.NoError(t, err)
	require.Len(t, live, 1, "the orphan login entry lists nothing")

	// A live session's token entry is never taken over, however old.
	require.Eventually(t, func() bool {
		e, err := st.sessions.Get(ctx, tokenKey(fp))
		return err == nil && time.Since(e.Created()) > cfg.OrphanGrace
	}, natstest.Patience, 50*time.Millisecond)
	_, err = m.CreateSession(ctx, "v", "tok")
	require.ErrorIs(t, err, bus.ErrTokenInUse)
}
