package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

// RunMaxSessionsRace checks that the per-login cap holds when many creates
// of one login race through several managers: newManagers returns managers
// that share one store (as bus processes share a bucket), all configured
// with bus.WithMaxSessions(limit, policy). With RefuseNew exactly limit
// creates succeed and the rest fail with bus.ErrSessionLimit; with
// EvictOldest all succeed and limit sessions are left.
func RunMaxSessionsRace(t *testing.T, newManagers func(tb testing.TB, limit int, policy bus.EvictPolicy) []*bus.Manager) {
	const limit, racers, rounds = 2, 12, 2
	for name, policy := range map[string]bus.EvictPolicy{"RefuseNew": bus.RefuseNew, "EvictOldest": bus.EvictOldest} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ms := newManagers(t, limit, policy)
			ctx := ctxFor(t)
			for round := range rounds {
				login := fmt.Sprintf("capped-%s-%d", name, round)
				var wg sync.WaitGroup
				errs := make([]error, racers)
				for i := range racers {
					wg.Go(func() {
						_, errs[i] = ms[i%len(ms)].CreateSession(ctx, login, fmt.Sprintf("tok-%d-%d", round, i))
					})
				}
				wg.Wait()
				ok, refused := 0, 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case errors.Is(err, bus.ErrSessionLimit):
						refused++
					default:
						require.NoError(t, err)
					}
				}
				live, err := ms[0].SessionsByLogin(ctx, login)
				require.NoError(t, err)
				assert.Len(t, live, limit, "round %d: the cap holds", round)
				if policy == bus.RefuseNew {
					assert.Equal(t, limit, ok, "round %d: exactly the cap is created", round)
					assert.Equal(t, racers-limit, refused)
				} else {
					assert.Equal(t, racers, ok, "round %d: evicting, every create succeeds", round)
				}
			}
		})
	}
}

// runMaxSessions runs RunMaxSessionsRace with two managers on one store.
func runMaxSessions(t *testing.T, newStore NewStore) {
	RunMaxSessionsRace(t, func(tb testing.TB, limit int, policy bus.EvictPolicy) []*bus.Manager {
		st := newStore(tb)
		var ms []*bus.Manager
		for i := range 2 {
			m, err := bus.New(st, fmt.Sprintf("bus-%d", i), time.Minute, bus.WithMaxSessions(limit, policy))
			require.NoError(tb, err)
			ms = append(ms, m)
		}
		return ms
	})
}
