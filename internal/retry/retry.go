// Package retry holds the waits that loops across the bus share: one
// context-aware sleep, the jittered backoff of compare-and-set retries,
// and the compare-and-set retry loop itself.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Sleep waits for d, or until ctx ends, and then returns ctx's error. A d
// of zero or less returns nil at once, as time.Sleep does.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff sleeps a random time up to min(1ms<<attempt, 50ms), so that
// writers that lost a compare-and-set do not retry in lockstep. It returns
// ctx's error if ctx ends first.
func Backoff(ctx context.Context, attempt int) error {
	limit := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
	return Sleep(ctx, rand.N(limit)+time.Millisecond/4)
}

// CompareAndSet calls try, a compare-and-set write, until it returns
// anything but an error wrapping lost (another writer came first), at most
// attempts times, with a [Backoff] before each new call. It returns try's
// last result, which wraps lost when every call lost, or ctx's error when
// ctx ends while it waits.
func CompareAndSet(ctx context.Context, lost error, attempts int, try func() error) error {
	for attempt := 0; ; attempt++ {
		err := try()
		if !errors.Is(err, lost) || attempt+1 >= attempts {
			return err
		}
		if err := Backoff(ctx, attempt); err != nil {
			return err
		}
	}
}
