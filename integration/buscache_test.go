package integration_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBusCache_ReadYourWritesAcrossInstances: two bus instances answer
// reads from their own caches; a write acknowledged by one is seen by the
// next read, whichever instance answers it (the notice reaches the other
// before the write's reply, and a cache with a notice still unapplied
// does not answer).
func TestBusCache_ReadYourWritesAcrossInstances(t *testing.T) {
	t.Parallel()
	env := newBusEnv(t, 2, time.Hour)
	ctx := context.Background()
	s, err := env.client.CreateSession(ctx, "ryw", "tok-ryw")
	require.NoError(t, err)
	for i := range 300 {
		v := strconv.Itoa(i)
		require.NoError(t, env.client.SetAttribute(ctx, s.SessionID, "n", v))
		for range 3 { // reads fill both instances' caches
			got, ok, err := env.client.GetAttribute(ctx, s.SessionID, "n")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, v, got, "read %d after write", i)
		}
	}
	require.NoError(t, env.client.DeleteSession(ctx, s.SessionID))
	_, err = env.client.GetSession(ctx, s.SessionID)
	require.Error(t, err)
}
