package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSleep(t *testing.T) {
	t.Parallel()
	require.NoError(t, Sleep(context.Background(), time.Millisecond))
	require.NoError(t, Sleep(context.Background(), 0))
	require.NoError(t, Sleep(context.Background(), -time.Second))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	require.NoError(t, Sleep(ctx, 0), "nothing to wait for")

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.DeadlineExceeded)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	require.NoError(t, Backoff(context.Background(), 0))
	require.NoError(t, Backoff(context.Background(), 100), "large attempts are capped, not overflowed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Backoff(ctx, 6), context.Canceled)
}

func TestCompareAndSet(t *testing.T) {
	t.Parallel()
	errLost := errors.New("lost")
	errOther := errors.New("other")
	tests := []struct {
		name      string
		giveTries []error // what each call of try returns; the last repeats
		wantCalls int
		wantErr   error
	}{
		{name: "first try lands", giveTries: []error{nil}, wantCalls: 1},
		{name: "lands after losing", giveTries: []error{errLost, fmt.Errorf("wrapped: %w", errLost), nil}, wantCalls: 3},
		{name: "other error stops", giveTries: []error{errLost, errOther}, wantCalls: 2, wantErr: errOther},
		{name: "every try lost", giveTries: []error{errLost}, wantCalls: 5, wantErr: errLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := CompareAndSet(context.Background(), errLost, 5, func() error {
				err := tt.giveTries[min(calls, len(tt.giveTries)-1)]
				calls++
				return err
			})
			assert.Equal(t, tt.wantCalls, calls)
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
		})
	}

	t.Run("ctx ends while waiting", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := CompareAndSet(ctx, errLost, 100, func() error {
			calls++
			cancel()
			return errLost
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, errLost)
		assert.Equal(t, 1, calls)
	})
}
