package retry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	require.NoError(t, Backoff(context.Background(), 0))
	require.NoError(t, Backoff(context.Background(), 100), "large attempts are capped, not overflowed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Backoff(ctx, 6), context.Canceled)
}
