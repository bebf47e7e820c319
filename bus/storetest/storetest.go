package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

// NewStore returns a fresh, empty store for one test.
type NewStore func(tb testing.TB) bus.Store

// NewAPI returns a fresh bus.Sessions whose sessions end after idle without use.
type NewAPI func(tb testing.TB, idle time.Duration) bus.Sessions

// Run checks s against the bus.Store contract, directly and through a
// bus.Manager built on it, and its bus.ChangeFeed when it offers one.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Store", func(t *testing.T) { runStore(t, newStore) })
	t.Run("MaxSessions", func(t *testing.T) { runMaxSessions(t, newStore) })
	t.Run("Feed", func(t *testing.T) { runFeed(t, newStore) })
	t.Run("API", func(t *testing.T) {
		RunAPI(t, func(tb testing.TB, idle time.Duration) bus.Sessions {
			m, err := bus.New(newStore(tb), "conformance", idle, bus.WithTouchInterval(time.Second))
			require.NoError(tb, err)
			return m
		})
	})
}

// patience bounds the waits for a state (an expiry) in this suite: long,
// because a wait ends as soon as the state holds.
const patience = 2 * time.Minute

// ctxFor returns a context that ends with the test binary's deadline (go
// test -timeout), not at a fixed time, so a slow but working store passes.
func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
	}
	tb.Cleanup(cancel)
	return ctx
}

func newSession(id, login, fp string, ttl time.Duration) *bus.Session {
	now := time.Now()
	return &bus.Session{
		SessionID: id, LoginID: login, ServiceID: "svc", CreateTime: now, LastAccess: now,
		ExpiresAt: now.Add(ttl), Attributes: map[string]string{}, TokenFingerprint: fp,
	}
}

const (
	id1 = "6f1c2a52-3b1e-4e7a-9d2c-0a1b2c3d4e5f"
	id2 = "7a2d3b63-4c2f-4f8b-8e3d-1b2c3d4e5f60"
)

func runStore(t *testing.T, newStore NewStore) {
	t.Run("CreateIsCreateOnly", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		_, err := st.CreateSession(ctx, newSession(id1, "u", "fp1", time.Minute), bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		_, err = st.CreateSession(ctx, newSession(id1, "u", "fp2", time.Minute), bus.Change{Op: bus.OpCreated})
		require.ErrorIs(t, err, bus.ErrConflict)
		_, err = st.CreateSession(ctx, newSession(id2, "u", "fp1", time.Minute), bus.Change{Op: bus.OpCreated})
		require.ErrorIs(t, err, bus.ErrTokenInUse)
		_, err = st.GetSession(ctx, id2)
		require.ErrorIs(t, err, bus.ErrSessionNotFound, "a failed create writes nothing")
		ids, err := st.SessionIDsByLogin(ctx, "u")
		require.NoError(t, err)
		assert.Equal(t, []string{id1}, ids)
	})
	t.Run("UpdateIsCompareAndSet", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		s := newSession(id1, "u", "fp", time.Minute)
		rev, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		got, err := st.GetSession(ctx, id1)
		require.NoError(t, err)
		require.Equal(t, rev, got.Revision)
		assert.Empty(t, got.Token)
		assert.Equal(t, "fp", got.TokenFingerprint)

		got.Attributes["scribble"] = "x" // returned sessions are the caller's to modify
		again, err := st.GetSession(ctx, id1)
		require.NoError(t, err)
		assert.Empty(t, again.Attributes, "a caller's change to a returned session leaks into the store")
		delete(got.Attributes, "scribble")

		got.Attributes["a"] = "1"
		rev2, err := st.UpdateSession(ctx, got, bus.Change{Op: bus.OpUpdated, Keys: []string{"a"}})
		require.NoError(t, err)
		assert.Greater(t, rev2, rev)

		got.Attributes["a"] = "2" // still at rev: stale
		_, err = st.UpdateSession(ctx, got, bus.Change{Op: bus.OpUpdated})
		require.ErrorIs(t, err, bus.ErrConflict)

		cur, err := st.GetSession(ctx, id1)
		require.NoError(t, err)
		assert.Equal(t, "1", cur.Attributes["a"])
		require.NoError(t, st.DeleteSession(ctx, cur, bus.Change{Op: bus.OpDeleted, Reason: bus.ReasonLogout}))
		_, err = st.UpdateSession(ctx, cur, bus.Change{Op: bus.OpUpdated})
		require.ErrorIs(t, err, bus.ErrSessionNotFound, "an update never brings a deleted session back")
		_, err = st.GetSession(ctx, id1)
		require.ErrorIs(t, err, bus.ErrSessionNotFound)
		_, err = st.SessionIDByToken(ctx, "fp")
		require.ErrorIs(t, err, bus.ErrSessionNotFound)
		require.NoError(t, st.DeleteSession(ctx, cur, bus.Change{Op: bus.OpDeleted}), "deleting twice is not an error")
	})
	t.Run("TokenReusableAfterDelete", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		s := newSession(id1, "u", "fp", time.Minute)
		_, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		got, err := st.GetSession(ctx, id1)
		require.NoError(t, err)
		require.NoError(t, st.DeleteSession(ctx, got, bus.Change{Op: bus.OpDeleted}))
		_, err = st.CreateSession(ctx, newSession(id2, "u", "fp", time.Minute), bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		id, err := st.SessionIDByToken(ctx, "fp")
		require.NoError(t, err)
		assert.Equal(t, id2, id)
	})
	t.Run("Fence", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		before := newSession(id1, "u", "fp1", time.Minute)
		require.NoError(t, st.SetLoginFence(ctx, "u", time.Now(), time.Minute))
		_, err := st.CreateSession(ctx, before, bus.Change{Op: bus.OpCreated})
		require.ErrorIs(t, err, bus.ErrConflict, "a session created before the fence is refused")
		_, err = st.SessionIDByToken(ctx, "fp1")
		require.ErrorIs(t, err, bus.ErrSessionNotFound, "and leaves no index entry")
		ids, err := st.SessionIDsByLogin(ctx, "u")
		require.NoError(t, err)
		assert.Empty(t, ids)

		after := newSession(id2, "u", "fp2", time.Minute)
		after.CreateTime = time.Now().Add(time.Millisecond)
		_, err = st.CreateSession(ctx, after, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err, "a session created after the fence is fine")
		_, err = st.CreateSession(ctx, newSession(id1, "other", "fp1", time.Minute), bus.Change{Op: bus.OpCreated})
		require.NoError(t, err, "fences are per login")
	})
	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		c1, err := st.ClaimLogin(ctx, "u", time.Now(), time.Minute)
		require.NoError(t, err)
		c2, err := st.ClaimLogin(ctx, "u", time.Now(), time.Minute)
		require.NoError(t, err)
		require.NotZero(t, c1)
		require.NotEqual(t, c1, c2, "every claim is new")
		_, err = st.CreateSession(ctx, newSession(id1, "u", "fp1", time.Minute), bus.Change{Op: bus.OpCreated, Claim: c1})
		require.ErrorIs(t, err, bus.ErrClaimLost, "a later claim voids an earlier one")
		_, err = st.SessionIDByToken(ctx, "fp1")
		require.ErrorIs(t, err, bus.ErrSessionNotFound, "a lost claim leaves no index entry")
		ids, err := st.SessionIDsByLogin(ctx, "u")
		require.NoError(t, err)
		assert.Empty(t, ids)

		_, err = st.ClaimLogin(ctx, "other", time.Now(), time.Minute)
		require.NoError(t, err)
		_, err = st.CreateSession(ctx, newSession(id1, "u", "fp1", time.Minute), bus.Change{Op: bus.OpCreated, Claim: c2})
		require.NoError(t, err, "claims are per login; the latest claim commits")

		c3, err := st.ClaimLogin(ctx, "u", time.Now(), time.Minute)
		require.NoError(t, err)
		require.NoError(t, st.SetLoginFence(ctx, "u", time.Now().Add(-time.Hour), time.Minute))
		_, err = st.CreateSession(ctx, newSession(id2, "u", "fp2", time.Minute), bus.Change{Op: bus.OpCreated, Claim: c3})
		require.ErrorIs(t, err, bus.ErrClaimLost, "a fence voids a claim")

		fence := time.Now()
		require.NoError(t, st.SetLoginFence(ctx, "u", fence, time.Minute))
		_, err = st.ClaimLogin(ctx, "u", fence, time.Minute)
		require.ErrorIs(t, err, bus.ErrConflict, "no claim for a session from before a fence")
		_, err = st.ClaimLogin(ctx, "u", fence.Add(time.Millisecond), time.Minute)
		require.NoError(t, err, "a claim for a session after the fence")
		_, err = st.ClaimLogin(ctx, "u", fence, time.Minute)
		require.ErrorIs(t, err, bus.ErrConflict, "a claim keeps the fence in place")
	})
	t.Run("Services", func(t *testing.T) {
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		r := bus.ServiceRecord{Credential: bus.ServiceCredential{ServiceID: "b", Permissions: []string{"session.read"}}, SecretHash: "h"}
		require.NoError(t, st.CreateService(ctx, r))
		require.ErrorIs(t, st.CreateService(ctx, r), bus.ErrServiceExists)
		require.NoError(t, st.CreateService(ctx, bus.ServiceRecord{Credential: bus.ServiceCredential{ServiceID: "a"}}))
		got, err := st.GetService(ctx, "b")
		require.NoError(t, err)
		assert.Equal(t, r.Credential.Permissions, got.Credential.Permissions)
		assert.Equal(t, "h", got.SecretHash)
		all, err := st.ListServices(ctx)
		require.NoError(t, err)
		require.Len(t, all, 2)
		assert.Equal(t, "a", all[0].Credential.ServiceID)
		got.SecretHash = "h2"
		require.NoError(t, st.UpdateService(ctx, got))
		require.ErrorIs(t, st.UpdateService(ctx, got), bus.ErrConflict, "compare-and-set on the record's revision")
		cur, err := st.GetService(ctx, "b")
		require.NoError(t, err)
		assert.Equal(t, "h2", cur.SecretHash)
		require.NoError(t, st.DeleteService(ctx, "b"))
		require.NoError(t, st.DeleteService(ctx, "b"))
		require.ErrorIs(t, st.UpdateService(ctx, cur), bus.ErrServiceNotFound)
		_, err = st.GetService(ctx, "b")
		require.ErrorIs(t, err, bus.ErrServiceNotFound)
	})
	t.Run("Expiry", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for a TTL")
		}
		t.Parallel()
		st, ctx := newStore(t), ctxFor(t)
		_, err := st.CreateSession(ctx, newSession(id1, "u", "fp", 2*time.Second), bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := st.GetSession(ctx, id1)
			_, terr := st.SessionIDByToken(ctx, "fp")
			ids, lerr := st.SessionIDsByLogin(ctx, "u")
			return errorsIsNotFound(err) && errorsIsNotFound(terr) && lerr == nil && len(ids) == 0
		}, patience, 50*time.Millisecond, "session and index entries expire")
	})
}

func errorsIsNotFound(err error) bool { return errors.Is(err, bus.ErrSessionNotFound) }
