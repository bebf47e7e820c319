package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a manual time source shared by a Manager and its MemoryStore.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestManager returns a Manager on a MemoryStore driven by a manual clock.
func newTestManager(t *testing.T, idle time.Duration, opts ...Option) (*Manager, *MemoryStore, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := NewMemoryStore()
	st.now = clk.now
	m, err := New(st, "svc-main", idle, opts...)
	require.NoError(t, err)
	m.o.now = clk.now
	return m, st, clk
}

func TestNew_InvalidConfig(t *testing.T) {
	tests := []struct {
		name      string
		giveStore Store
		giveID    string
		giveIdle  time.Duration
		giveOpts  []Option
	}{
		{"nil store", nil, "svc", time.Minute, nil},
		{"bad service id", NewMemoryStore(), "a.b", time.Minute, nil},
		{"idle under 1s", NewMemoryStore(), "svc", 500 * time.Millisecond, nil},
		{"negative touch", NewMemoryStore(), "svc", time.Minute, []Option{WithTouchInterval(-1)}},
		{"sub-second lifetime", NewMemoryStore(), "svc", time.Minute, []Option{WithMaxLifetime(time.Millisecond)}},
		{"negative max sessions", NewMemoryStore(), "svc", time.Minute, []Option{WithMaxSessions(-1, EvictOldest)}},
		{"zero timeout", NewMemoryStore(), "svc", time.Minute, []Option{WithRequestTimeout(0)}},
		{"limits inverted", NewMemoryStore(), "svc", time.Minute, []Option{WithLimits(10, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.giveStore, tt.giveID, tt.giveIdle, tt.giveOpts...)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestManager_TouchInterval(t *testing.T) {
	m, _, clk := newTestManager(t, time.Hour, WithTouchInterval(time.Minute))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)

	clk.advance(30 * time.Second)
	got, err := m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, s.Revision, got.Revision, "a read inside the touch interval does not write")
	assert.True(t, got.ExpiresAt.Equal(s.ExpiresAt))

	clk.advance(31 * time.Second)
	got, err = m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Greater(t, got.Revision, s.Revision, "a read past the interval touches")
	assert.True(t, got.ExpiresAt.Equal(clk.now().Add(time.Hour)), "idle timeout slides from the touch")

	again, err := m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, got.Revision, again.Revision, "at most one touch per interval")
}

func TestManager_IdleExpiry(t *testing.T) {
	m, _, clk := newTestManager(t, time.Minute)
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	clk.advance(time.Minute)
	_, err = m.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, ErrSessionNotFound)
	list, err := m.SessionsByLogin(ctx, "u")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestManager_MaxLifetime(t *testing.T) {
	m, _, clk := newTestManager(t, time.Minute, WithMaxLifetime(90*time.Second), WithTouchInterval(time.Second))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	clk.advance(40 * time.Second)
	got, err := m.RefreshSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.Equal(s.CreateTime.Add(90*time.Second)), "the cap bounds the slide")
	clk.advance(40 * time.Second)
	_, err = m.RefreshSession(ctx, s.SessionID)
	require.NoError(t, err)
	clk.advance(40 * time.Second) // used every 40 s: the idle timeout never hits, the cap does
	_, err = m.RefreshSession(ctx, s.SessionID)
	require.ErrorIs(t, err, ErrSessionNotFound)
}

// TestManager_MaxLifetimeWholeSeconds: a capped expiry is whole seconds
// from the write that sets it, at or before the cap, so a store with
// whole-second TTLs ends the session on time, not up to a second late.
func TestManager_MaxLifetimeWholeSeconds(t *testing.T) {
	m, _, clk := newTestManager(t, time.Minute, WithMaxLifetime(90*time.Second), WithTouchInterval(time.Second))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	clk.advance(40*time.Second + 300*time.Millisecond)
	got, err := m.RefreshSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, 49*time.Second, got.ExpiresAt.Sub(got.LastAccess), "whole seconds from the write")
	assert.False(t, got.ExpiresAt.After(s.CreateTime.Add(90*time.Second)), "never past the cap")
}

func TestManager_MaxSessions(t *testing.T) {
	ctx := context.Background()
	t.Run("evict oldest", func(t *testing.T) {
		m, _, clk := newTestManager(t, time.Hour, WithMaxSessions(2, EvictOldest))
		var ids []string
		for _, tok := range []string{"a", "b", "c"} {
			s, err := m.CreateSession(ctx, "u", tok)
			require.NoError(t, err)
			ids = append(ids, s.SessionID)
			clk.advance(time.Second)
		}
		_, err := m.GetSession(ctx, ids[0])
		require.ErrorIs(t, err, ErrSessionNotFound, "the oldest was evicted")
		list, err := m.SessionsByLogin(ctx, "u")
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Equal(t, ids[1], list[0].SessionID)
		assert.Equal(t, ids[2], list[1].SessionID)
	})
	t.Run("refuse new", func(t *testing.T) {
		m, _, _ := newTestManager(t, time.Hour, WithMaxSessions(2, RefuseNew))
		for _, tok := range []string{"a", "b"} {
			_, err := m.CreateSession(ctx, "u", tok)
			require.NoError(t, err)
		}
		_, err := m.CreateSession(ctx, "u", "c")
		require.ErrorIs(t, err, ErrSessionLimit)
		_, err = m.GetSessionByToken(ctx, "c")
		require.ErrorIs(t, err, ErrSessionNotFound)
		_, err = m.CreateSession(ctx, "other", "c")
		require.NoError(t, err, "the cap is per login")
	})
}

func TestManager_ActingServiceFromContext(t *testing.T) {
	m, _, _ := newTestManager(t, time.Hour)
	s, err := m.CreateSession(ContextWithService(context.Background(), "order-api"), "u", "t")
	require.NoError(t, err)
	assert.Equal(t, "order-api", s.ServiceID)
	s2, err := m.CreateSession(context.Background(), "u", "t2")
	require.NoError(t, err)
	assert.Equal(t, "svc-main", s2.ServiceID, "without a caller the manager acts as itself")
}

func TestManager_TokenNeverStored(t *testing.T) {
	m, st, _ := newTestManager(t, time.Hour)
	const token = "very-secret-user-token"
	s, err := m.CreateSession(context.Background(), "u", token)
	require.NoError(t, err)
	stored := st.sessions[s.SessionID]
	assert.Empty(t, stored.Token)
	assert.NotContains(t, stored.TokenFingerprint, token)
	for fp := range st.tokens {
		assert.NotContains(t, fp, token)
	}
}

func TestManager_ServiceSecretHashed(t *testing.T) {
	m, st, _ := newTestManager(t, time.Hour)
	ctx := context.Background()
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "a"}, "")
	require.NoError(t, err)
	rec := st.services["a"]
	assert.True(t, strings.HasPrefix(rec.SecretHash, "$argon2id$"))
	assert.NotContains(t, rec.SecretHash, secret)
	_, err = m.RegisterService(ctx, ServiceCredential{ServiceID: "b"}, "short")
	require.ErrorIs(t, err, ErrInvalidInput, "weak secrets are refused")
}

func TestManager_UpdateKeepsImmutableFields(t *testing.T) {
	m, _, _ := newTestManager(t, time.Hour)
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	forged := s.Clone()
	forged.ServiceID = "forged"
	forged.CreateTime = time.Time{}
	forged.Attributes["k"] = "v"
	got, err := m.UpdateSession(ctx, forged)
	require.NoError(t, err)
	assert.Equal(t, "svc-main", got.ServiceID)
	assert.True(t, got.CreateTime.Equal(s.CreateTime))
	assert.Equal(t, "v", got.Attributes["k"])
	_, err = m.UpdateSession(ctx, &Session{SessionID: s.SessionID})
	require.ErrorIs(t, err, ErrConflict, "no session is ever at revision 0: it is a stale revision")
}

func TestCheckSecret(t *testing.T) {
	h := HashSecret("correct horse battery staple")
	assert.True(t, CheckSecret(h, "correct horse battery staple"))
	assert.False(t, CheckSecret(h, "correct horse battery stapl"))
	assert.False(t, CheckSecret("garbage", "x"))
	assert.NotEqual(t, h, HashSecret("correct horse battery staple"), "salted")
}

func TestCodes_RoundTrip(t *testing.T) {
	for _, c := range codes {
		assert.Equal(t, c.err, ErrorForCode(CodeOf(c.err).Name))
	}
	assert.Equal(t, 500, CodeOf(context.Canceled).Status)
}

// failingUpdates is a MemoryStore whose session updates fail with err.
type failingUpdates struct {
	*MemoryStore
	err error
}

func (f failingUpdates) UpdateSession(context.Context, *Session, Change) (uint64, error) {
	return 0, f.err
}

// TestManager_StoreErrors checks what a write returns for each kind of
// store failure: errors with a wire code pass as they are, a ctx that
// ends is unavailable, anything else is internal.
func TestManager_StoreErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveErr error
		wantErr error
	}{
		{name: "events behind", giveErr: fmt.Errorf("kvstore: %w: 9 changes not delivered", ErrEventsBehind), wantErr: ErrEventsBehind},
		{name: "not found", giveErr: ErrSessionNotFound, wantErr: ErrSessionNotFound},
		{name: "conflict until the deadline", giveErr: ErrConflict, wantErr: ErrUnavailable},
		{name: "anything else", giveErr: errors.New("disk on fire"), wantErr: ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := NewMemoryStore()
			m, err := New(failingUpdates{st, tt.giveErr}, "svc", time.Minute, WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(t, err)
			s, err := m.CreateSession(context.Background(), "u1", "t1")
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = m.SetAttribute(ctx, s.SessionID, "k", "v")
			require.ErrorIs(t, err, tt.wantErr)
			if !errors.Is(tt.giveErr, ErrConflict) {
				assert.NotErrorIs(t, err, ErrUnavailable)
			}
		})
	}
}
