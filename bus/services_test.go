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

func TestManager_RotateService(t *testing.T) {
	m, _, clk := newTestManager(t, time.Hour)
	ctx := context.Background()
	old, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	fresh, err := m.RotateService(ctx, "pay", "", time.Minute)
	require.NoError(t, err)
	require.NotEqual(t, old, fresh)

	_, err = m.VerifyService(ctx, "pay", fresh)
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", old)
	require.NoError(t, err, "the old secret works during the grace period")

	clk.advance(time.Minute)
	_, err = m.VerifyService(ctx, "pay", old)
	require.ErrorIs(t, err, ErrUnauthenticated, "and not after it")
	_, err = m.VerifyService(ctx, "pay", fresh)
	require.NoError(t, err)

	again, err := m.RotateService(ctx, "pay", "", 0)
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", fresh)
	require.ErrorIs(t, err, ErrUnauthenticated, "no grace: the previous secret ends at once")
	_, err = m.VerifyService(ctx, "pay", again)
	require.NoError(t, err)

	_, err = m.RotateService(ctx, "nobody", "", 0)
	require.ErrorIs(t, err, ErrServiceNotFound)
}

func TestManager_RegisterService_Permissions(t *testing.T) {
	m, _, _ := newTestManager(t, time.Hour)
	ctx := context.Background()
	tests := []struct {
		name      string
		givePerms []string
		wantErr   string // "" for success, else the name the error must mention
	}{
		{name: "none"},
		{name: "every one", givePerms: AllPermissions},
		{name: "repeated", givePerms: []string{PermSessionRead, PermSessionRead}},
		{name: "misspelt", givePerms: []string{PermSessionWrite, "session.reed"}, wantErr: "session.reed"},
		{name: "old short name", givePerms: []string{"read"}, wantErr: "read"},
		{name: "wildcard", givePerms: []string{"session.*"}, wantErr: "session.*"},
		{name: "other case", givePerms: []string{"Session.Read"}, wantErr: "Session.Read"},
		{name: "empty", givePerms: []string{""}, wantErr: `""`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("svc-%d", i)
			_, err := m.RegisterService(ctx, ServiceCredential{ServiceID: id, Permissions: tt.givePerms}, "")
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidInput)
			assert.Contains(t, err.Error(), tt.wantErr)
			_, err = m.store.GetService(ctx, id)
			require.ErrorIs(t, err, ErrServiceNotFound, "nothing stored")
		})
	}
}

func TestManager_VerifyRateLimit(t *testing.T) {
	m, _, clk := newTestManager(t, time.Hour)
	ctx := context.Background()
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	for range 5 {
		_, err = m.VerifyService(ctx, "pay", "wrong-secret-wrong-secret")
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	_, err = m.VerifyService(ctx, "pay", secret)
	require.ErrorIs(t, err, ErrRateLimited, "after 5 failures in a minute even the right secret waits")
	_, err = m.VerifyService(ctx, "other", "x")
	require.ErrorIs(t, err, ErrUnauthenticated, "the limit is per service id")
	clk.advance(time.Minute)
	_, err = m.VerifyService(ctx, "pay", secret)
	require.NoError(t, err, "after the cool-down")

	// With remote addresses, one host's failures do not lock out another.
	attacker := ContextWithRemote(ctx, "10.0.0.66")
	for range 5 {
		_, err = m.VerifyService(attacker, "pay", "wrong-secret-wrong-secret")
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	_, err = m.VerifyService(attacker, "pay", secret)
	require.ErrorIs(t, err, ErrRateLimited)
	_, err = m.VerifyService(ContextWithRemote(ctx, "10.0.0.7"), "pay", secret)
	require.NoError(t, err, "another host is not locked out")
}

// TestManager_VerifyRateLimitPerCaller: one caller's failures lock out
// that caller only, never another service or host verifying the same id.
func TestManager_VerifyRateLimitPerCaller(t *testing.T) {
	m, _, clk := newTestManager(t, time.Hour)
	ctx := context.Background()
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "admin", Permissions: AllPermissions}, "")
	require.NoError(t, err)
	const wrong = "wrong-secret-wrong-secret"

	svcA := ContextWithService(ctx, "svc-a")
	for range verifyMaxFailures {
		_, err = m.VerifyService(svcA, "admin", wrong)
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	_, err = m.VerifyService(svcA, "admin", secret)
	require.ErrorIs(t, err, ErrRateLimited, "svc-a is locked out of verifying admin")

	_, err = m.VerifyService(ContextWithService(ctx, "svc-b"), "admin", secret)
	require.NoError(t, err, "another service verifies admin at once")
	_, err = m.VerifyService(ContextWithRemote(ctx, "10.0.0.7"), "admin", secret)
	require.NoError(t, err, "a login of admin from a host is not locked out")
	_, err = m.VerifyService(ctx, "admin", secret)
	require.NoError(t, err, "nor an in-process check")
	_, err = m.VerifyService(ContextWithRemote(svcA, "10.0.0.7"), "admin", secret)
	require.NoError(t, err, "svc-a from a named host is another window")

	// A host's failures stay with that host.
	host := ContextWithRemote(ctx, "10.0.0.66")
	for range verifyMaxFailures {
		_, err = m.VerifyService(host, "admin", wrong)
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	_, err = m.VerifyService(host, "admin", secret)
	require.ErrorIs(t, err, ErrRateLimited)
	_, err = m.VerifyService(ContextWithService(ctx, "svc-b"), "admin", secret)
	require.NoError(t, err)
	_, err = m.VerifyService(ContextWithRemote(ctx, "10.0.0.67"), "admin", secret)
	require.NoError(t, err)

	clk.advance(verifyWindow)
	_, err = m.VerifyService(svcA, "admin", secret)
	require.NoError(t, err, "after the window")
}

func TestVerifyLimiter_Bounded(t *testing.T) {
	var l verifyLimiter
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := ContextWithService(context.Background(), "attacker")
	locked := verifyKeyOf(ContextWithRemote(context.Background(), "10.0.0.1"), "admin")
	for range verifyMaxFailures {
		l.fail(locked, now)
	}
	require.True(t, l.blocked(locked, now))

	// A spray of ids, long and invalid ones included, within the window.
	for i := range 3 * verifyMaxTracked {
		id := fmt.Sprintf("svc-%d", i)
		if i%1000 == 0 {
			id = strings.Repeat("x", 1<<16) + id // not a valid id
		}
		l.fail(verifyKeyOf(ctx, id), now)
		require.LessOrEqual(t, len(l.fails), verifyMaxTracked)
	}
	assert.True(t, l.blocked(locked, now), "a running lockout outlives the spray")
	for k := range l.fails {
		assert.LessOrEqual(t, len(k.target)+len(k.caller)+len(k.remote), 2*MaxServiceIDBytes+maxRemoteBytes+3)
	}

	// Windows that ended make room before running ones.
	later := now.Add(verifyWindow)
	for i := range verifyMaxTracked {
		l.fail(verifyKeyOf(ctx, fmt.Sprintf("later-%d", i)), later)
	}
	ended := 0
	for _, w := range l.fails {
		if w.start.Before(later) {
			ended++
		}
	}
	assert.Zero(t, ended, "windows that ended are kept")
	assert.Equal(t, verifyMaxTracked, len(l.fails), "every running window is kept")
}

func TestManager_ServiceAudit(t *testing.T) {
	var got []ServiceEvent
	m, _, _ := newTestManager(t, time.Hour, WithServiceAudit(func(_ context.Context, e ServiceEvent) { got = append(got, e) }))
	ctx := ContextWithService(context.Background(), "admin-cli")
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	_, err = m.RotateService(ctx, "pay", "", 0)
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", secret)
	require.Error(t, err)
	require.NoError(t, m.RemoveService(ctx, "pay"))
	var types []string
	for _, e := range got {
		types = append(types, e.Type)
		assert.Equal(t, "pay", e.ServiceID)
		assert.Equal(t, "admin-cli", e.Actor)
		assert.NotContains(t, e.ServiceID+e.Actor+e.Type, secret)
	}
	assert.Equal(t, []string{ServiceRegistered, ServiceRotated, ServiceVerifyFailed, ServiceRemoved}, types)
}

func TestManager_AccessAudit(t *testing.T) {
	var got []AccessEvent
	m, _, _ := newTestManager(t, time.Hour, WithAccessAudit(func(_ context.Context, e AccessEvent) { got = append(got, e) }))
	creator := ContextWithService(context.Background(), "login")
	s, err := m.CreateSession(creator, "u", "t")
	require.NoError(t, err)
	_, err = m.GetSession(creator, s.SessionID)
	require.NoError(t, err)
	assert.Empty(t, got, "the creator's own reads are not cross-service access")
	_, err = m.GetSessionByToken(ContextWithService(context.Background(), "orders"), "t")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, AccessEvent{SessionID: s.SessionID, LoginID: "u", Reader: "orders", Creator: "login", Time: got[0].Time}, got[0])
}

func TestManager_AttributeEncryption(t *testing.T) {
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	m, st, _ := newTestManager(t, time.Hour, WithAttributeEncryption("k1", map[string][]byte{"k1": k1}))
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "card", "4111-1111"))

	first, err := m.CreateSession(ctx, "u", "t-first", WithAttributes(map[string]string{"card": "5500-0000"}))
	require.NoError(t, err)
	assert.Equal(t, "5500-0000", first.Attributes["card"])
	assert.True(t, strings.HasPrefix(st.sessions[first.SessionID].Attributes["card"], "enc:v1:k1:"), "first attributes are sealed too")

	stored := st.sessions[s.SessionID].Attributes["card"]
	assert.True(t, strings.HasPrefix(stored, "enc:v1:k1:"), "stored %q", stored)
	assert.NotContains(t, stored, "4111")
	v, ok, err := m.GetAttribute(ctx, s.SessionID, "card")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "4111-1111", v)

	// Rotate: a manager with k2 current still reads k1 values and seals new ones with k2.
	m2, err := New(st, "svc-main", time.Hour, WithAttributeEncryption("k2", map[string][]byte{"k1": k1, "k2": k2}))
	require.NoError(t, err)
	m2.o.now = m.o.now
	require.NoError(t, m2.SetAttribute(ctx, s.SessionID, "plan", "gold"))
	got, err := m2.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"card": "4111-1111", "plan": "gold"}, got.Attributes)
	assert.True(t, strings.HasPrefix(st.sessions[s.SessionID].Attributes["plan"], "enc:v1:k2:"))

	// A ciphertext moved to another attribute does not open.
	st.sessions[s.SessionID].Attributes["moved"] = st.sessions[s.SessionID].Attributes["card"]
	_, err = m2.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, ErrInternal)

	_, err = New(st, "svc", time.Hour, WithAttributeEncryption("nope", map[string][]byte{"k1": k1}))
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(st, "svc", time.Hour, WithAttributeEncryption("k1", map[string][]byte{"k1": []byte("short")}))
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// TestManager_VerifyRemembersOnlyWhatIsCurrent: repeated logins are
// remembered, but never past a removal or a re-registration.
func TestManager_VerifyRemembersOnlyWhatIsCurrent(t *testing.T) {
	m, _, _ := newTestManager(t, time.Hour)
	ctx := context.Background()
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	for range 3 {
		_, err = m.VerifyService(ctx, "pay", secret)
		require.NoError(t, err)
	}
	_, err = m.VerifyService(ctx, "pay", secret+"x")
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.NoError(t, m.RemoveService(ctx, "pay"))
	_, err = m.VerifyService(ctx, "pay", secret)
	require.ErrorIs(t, err, ErrUnauthenticated, "removed: a remembered success does not count")
	other, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", secret)
	require.ErrorIs(t, err, ErrUnauthenticated, "re-registered with a new secret: the old one fails")
	_, err = m.VerifyService(ctx, "pay", other)
	require.NoError(t, err)
}

// BenchmarkVerifyService: a service logging in again and again (reconnects,
// bursts of connections) against one with a wrong secret (always hashed).
func BenchmarkVerifyService(b *testing.B) {
	m, err := New(NewMemoryStore(), "svc", time.Hour)
	require.NoError(b, err)
	ctx := context.Background()
	secret, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(b, err)
	b.Run("repeat", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.VerifyService(ctx, "pay", secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if !CheckSecret(HashSecret(secret), secret) {
				b.Fatal("no match")
			}
		}
	})
}

// TestManager_FailedVerifiesAreCounted: a flood of failed verifications of
// one id is audited as counts (the 1st, 10th, ... of a minute), not one
// record each; another id is counted apart.
func TestManager_FailedVerifiesAreCounted(t *testing.T) {
	var mu sync.Mutex
	var got []ServiceEvent
	m, _, clk := newTestManager(t, time.Hour, WithServiceAudit(func(_ context.Context, e ServiceEvent) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	}))
	ctx := context.Background()
	_, err := m.RegisterService(ctx, ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	for i := range 25 {
		// Blocked attempts (after 5 from one caller) count too.
		_, err := m.VerifyService(ContextWithService(ctx, fmt.Sprintf("caller-%d", i%2)), "pay", "wrong-secret-0123456789")
		require.Error(t, err)
	}
	_, err = m.VerifyService(ctx, "other", "wrong-secret-0123456789")
	require.ErrorIs(t, err, ErrUnauthenticated)
	clk.advance(time.Minute)
	_, err = m.VerifyService(ctx, "pay", "wrong-secret-0123456789")
	require.ErrorIs(t, err, ErrUnauthenticated)

	var counts []string
	for _, e := range got {
		if e.Type == ServiceVerifyFailed {
			counts = append(counts, fmt.Sprintf("%s:%d", e.ServiceID, e.Count))
		}
	}
	assert.Equal(t, []string{"pay:1", "pay:10", "other:1", "pay:1"}, counts, "a new minute counts from 1")
}
