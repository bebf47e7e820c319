package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// changeLog is a MemoryStore that records every update's Change.
type changeLog struct {
	*MemoryStore
	mu      sync.Mutex
	changes []Change
}

func (c *changeLog) UpdateSession(ctx context.Context, s *Session, ch Change) (uint64, error) {
	rev, err := c.MemoryStore.UpdateSession(ctx, s, ch)
	if err == nil {
		c.mu.Lock()
		c.changes = append(c.changes, ch)
		c.mu.Unlock()
	}
	return rev, err
}

// TestManager_GroupCommitKeepsEveryChangeAndItsAuthor: concurrent writes of
// two services to one session all land; every stored revision is one
// service's, and names exactly the keys that service changed in it.
func TestManager_GroupCommitKeepsEveryChangeAndItsAuthor(t *testing.T) {
	st := &changeLog{MemoryStore: NewMemoryStore()}
	m, err := New(st, "svc-main", time.Hour)
	require.NoError(t, err)
	s, err := m.CreateSession(context.Background(), "u", "t")
	require.NoError(t, err)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		svc := fmt.Sprintf("svc-%d", w%2)
		ctx := ContextWithService(context.Background(), svc)
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, m.SetAttribute(ctx, s.SessionID, fmt.Sprintf("%s/w%d-%d", svc, w, i), "v"))
			}
		})
	}
	wg.Wait()
	got, err := m.GetSession(context.Background(), s.SessionID)
	require.NoError(t, err)
	assert.Len(t, got.Attributes, writers*each, "no write lost")

	keys := 0
	for _, c := range st.changes {
		require.Equal(t, OpUpdated, c.Op)
		for _, k := range c.Keys {
			assert.True(t, strings.HasPrefix(k, c.Service+"/"), "key %s recorded as changed by %s", k, c.Service)
		}
		keys += len(c.Keys)
	}
	assert.Equal(t, writers*each, keys, "every change is named in exactly one revision")
	t.Logf("%d writes in %d revisions", writers*each, len(st.changes))
}

// TestManager_GroupCommitIsolatesFailures: a change that fails (too large)
// fails alone; the changes batched with it land.
func TestManager_GroupCommitIsolatesFailures(t *testing.T) {
	m, _, _ := newTestManager(t, time.Hour, WithLimits(1000, 1000))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "base", strings.Repeat("b", 600)))
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			v := "small"
			if i%5 == 0 {
				v = strings.Repeat("x", 500) // fits as a value, not beside base
			}
			errs[i] = m.SetAttribute(ctx, s.SessionID, fmt.Sprintf("k%d", i), v)
		})
	}
	wg.Wait()
	got, err := m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	for i, err := range errs {
		if i%5 == 0 {
			assert.ErrorIs(t, err, ErrTooLarge)
			assert.NotContains(t, got.Attributes, fmt.Sprintf("k%d", i))
		} else {
			assert.NoError(t, err)
			assert.Equal(t, "small", got.Attributes[fmt.Sprintf("k%d", i)])
		}
	}
}
