// Package retry holds the one jittered, context-aware backoff sleep that
// compare-and-set loops across the bus share.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff sleeps a random time up to min(1ms<<attempt, 50ms), so that
// writers that lost a compare-and-set do not retry in lockstep. It returns
// ctx's error if ctx ends first.
func Backoff(ctx context.Context, attempt int) error {
	limit := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + time.Millisecond/4)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
