package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

// RunAPI checks the behaviour users rely on against any bus.Sessions: the
// Manager in-process or the client over NATS.
func RunAPI(t *testing.T, newAPI NewAPI) {
	tests := []struct {
		name string
		run  func(t *testing.T, api bus.Sessions)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"Attributes", testAttributes},
		{"CreateWithAttributes", testCreateWithAttributes},
		{"UpdateSession", testUpdateSession},
		{"Delete", testDelete},
		{"SessionsByLogin", testSessionsByLogin},
		{"TokenInUse", testTokenInUse},
		{"InvalidInput", testInvalidInput},
		{"Services", testServices},
		{"ConcurrentAttributes", testConcurrentAttributes},
		{"DeleteAllRacingCreates", testDeleteAllRacingCreates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newAPI(t, time.Minute))
		})
	}
	t.Run("Expiry", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for TTLs")
		}
		t.Parallel()
		testExpiry(t, newAPI(t, 2*time.Second))
	})
}

// testCreateWithAttributes: a create may set the first attributes in the
// same write; they obey SetAttribute's rules, and a refused create leaves
// no session behind.
func testCreateWithAttributes(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	attrs := map[string]string{"role": "admin", "department": "sales", "device": "web", "empty": ""}
	s, err := api.CreateSession(ctx, "u", "t", bus.WithAttributes(attrs))
	require.NoError(t, err)
	assert.Equal(t, attrs, s.Attributes)
	attrs["role"] = "changed after the call"
	got, err := api.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"role": "admin", "department": "sales", "device": "web", "empty": ""}, got.Attributes)
	assert.Equal(t, s.Revision, got.Revision, "one write")
	v, ok, err := api.GetAttribute(ctx, s.SessionID, "device")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "web", v)

	for name, bad := range map[string]map[string]string{
		"empty key":     {"": "x"},
		"key too long":  {strings.Repeat("k", bus.MaxAttrKeyBytes+1): "x"},
		"invalid utf8":  {"k\xff": "x"},
		"value too big": {"k": strings.Repeat("v", bus.DefaultMaxAttrValueBytes+1)},
	} {
		_, err := api.CreateSession(ctx, "refused", "t-"+name, bus.WithAttributes(bad))
		require.Error(t, err, name)
		assert.True(t, errors.Is(err, bus.ErrInvalidInput) || errors.Is(err, bus.ErrTooLarge), "%s: %v", name, err)
	}
	list, err := api.SessionsByLogin(ctx, "refused")
	require.NoError(t, err)
	assert.Empty(t, list, "a refused create writes nothing")
}

// oddLogins are ids that must work although they hold what NATS subjects
// and KV keys do not allow.
var oddLogins = []string{"user.1", "a b", "*", ">", "user.*.>", "用户-ñ", strings.Repeat("x", bus.MaxLoginIDBytes)}

func testCreateAndGet(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	for i, login := range oddLogins {
		token := fmt.Sprintf("token-%d", i)
		s, err := api.CreateSession(ctx, login, token)
		require.NoError(t, err, "login %.20q", login)
		assert.Len(t, s.SessionID, 36)
		assert.Equal(t, login, s.LoginID)
		assert.Equal(t, token, s.Token, "create returns the token once")
		assert.NotZero(t, s.Revision)
		assert.True(t, s.ExpiresAt.After(s.CreateTime))

		got, err := api.GetSession(ctx, s.SessionID)
		require.NoError(t, err)
		assert.Equal(t, login, got.LoginID)
		assert.Empty(t, got.Token, "tokens are not stored, so never read back")
		assert.Equal(t, s.ServiceID, got.ServiceID)
		assert.True(t, s.CreateTime.Equal(got.CreateTime))

		byToken, err := api.GetSessionByToken(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, s.SessionID, byToken.SessionID)
	}
	_, err := api.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	_, err = api.GetSessionByToken(ctx, "no-such-token")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}

func testAttributes(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	s, err := api.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	require.NoError(t, api.SetAttribute(ctx, s.SessionID, "role", "admin"))
	require.NoError(t, api.SetAttribute(ctx, s.SessionID, "dept", "IT"))
	v, ok, err := api.GetAttribute(ctx, s.SessionID, "role")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "admin", v)
	require.NoError(t, api.RemoveAttribute(ctx, s.SessionID, "role"))
	require.NoError(t, api.RemoveAttribute(ctx, s.SessionID, "role"), "removing an unset attribute is fine")
	_, ok, err = api.GetAttribute(ctx, s.SessionID, "role")
	require.NoError(t, err)
	assert.False(t, ok)
	got, err := api.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"dept": "IT"}, got.Attributes)

	missing := "00000000-0000-4000-8000-000000000000"
	require.ErrorIs(t, api.SetAttribute(ctx, missing, "k", "v"), bus.ErrSessionNotFound)
	_, _, err = api.GetAttribute(ctx, missing, "k")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}

func testUpdateSession(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	s, err := api.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	cur, err := api.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	cur.Attributes = map[string]string{"a": "1", "b": "2"}
	next, err := api.UpdateSession(ctx, cur)
	require.NoError(t, err)
	assert.Greater(t, next.Revision, cur.Revision)
	assert.Equal(t, cur.Attributes, next.Attributes)

	_, err = api.UpdateSession(ctx, cur) // cur is stale now
	require.ErrorIs(t, err, bus.ErrConflict)

	moved := next.Clone()
	moved.LoginID = "someone-else"
	_, err = api.UpdateSession(ctx, moved)
	require.ErrorIs(t, err, bus.ErrInvalidInput, "login_id cannot change")

	require.NoError(t, api.DeleteSession(ctx, s.SessionID))
	_, err = api.UpdateSession(ctx, next)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	_, err = api.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound, "an update never brings a deleted session back")
}

func testDelete(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	a, err := api.CreateSession(ctx, "u", "ta")
	require.NoError(t, err)
	b, err := api.CreateSession(ctx, "u", "tb")
	require.NoError(t, err)
	require.NoError(t, api.DeleteSession(ctx, a.SessionID))
	require.NoError(t, api.DeleteSession(ctx, a.SessionID), "deleting a missing session is not an error")
	_, err = api.GetSession(ctx, a.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	_, err = api.GetSessionByToken(ctx, "ta")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)

	require.NoError(t, api.DeleteSessionByToken(ctx, "tb"))
	require.NoError(t, api.DeleteSessionByToken(ctx, "tb"))
	_, err = api.GetSession(ctx, b.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	list, err := api.SessionsByLogin(ctx, "u")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func testSessionsByLogin(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	want := map[string]bool{}
	for i := range 3 {
		s, err := api.CreateSession(ctx, "multi.device", fmt.Sprintf("t%d", i))
		require.NoError(t, err)
		want[s.SessionID] = true
	}
	_, err := api.CreateSession(ctx, "multi.device.other", "x") // a prefix of another login's key
	require.NoError(t, err)
	_, err = api.CreateSession(ctx, "multi", "y")
	require.NoError(t, err)
	list, err := api.SessionsByLogin(ctx, "multi.device")
	require.NoError(t, err)
	got := map[string]bool{}
	for _, s := range list {
		got[s.SessionID] = true
		assert.Equal(t, "multi.device", s.LoginID)
	}
	assert.Equal(t, want, got)

	n, err := api.DeleteAllSessions(ctx, "multi.device")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	list, err = api.SessionsByLogin(ctx, "multi.device")
	require.NoError(t, err)
	assert.Empty(t, list)
	others, err := api.SessionsByLogin(ctx, "multi.device.other")
	require.NoError(t, err)
	assert.Len(t, others, 1, "other logins are untouched")
}

func testTokenInUse(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	s, err := api.CreateSession(ctx, "u", "same")
	require.NoError(t, err)
	_, err = api.CreateSession(ctx, "v", "same")
	require.ErrorIs(t, err, bus.ErrTokenInUse)
	list, err := api.SessionsByLogin(ctx, "v")
	require.NoError(t, err)
	assert.Empty(t, list, "a refused create leaves nothing behind")
	byToken, err := api.GetSessionByToken(ctx, "same")
	require.NoError(t, err)
	require.Equal(t, s.SessionID, byToken.SessionID)
	require.NoError(t, api.DeleteSession(ctx, s.SessionID))
	next, err := api.CreateSession(ctx, "v", "same")
	require.NoError(t, err, "a token is free again once its session ended")
	byToken, err = api.GetSessionByToken(ctx, "same")
	require.NoError(t, err)
	assert.Equal(t, next.SessionID, byToken.SessionID, "the token now finds its new session")
}

func testInvalidInput(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	s, err := api.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"empty login", func() error { _, err := api.CreateSession(ctx, "", "t2"); return err }, bus.ErrInvalidInput},
		{"long login", func() error {
			_, err := api.CreateSession(ctx, strings.Repeat("x", bus.MaxLoginIDBytes+1), "t2")
			return err
		}, bus.ErrTooLarge},
		{"5KB login", func() error { _, err := api.SessionsByLogin(ctx, strings.Repeat("y", 5000)); return err }, bus.ErrTooLarge},
		{"invalid utf8 login", func() error { _, err := api.CreateSession(ctx, "a\xff", "t2"); return err }, bus.ErrInvalidInput},
		{"empty token", func() error { _, err := api.CreateSession(ctx, "u", ""); return err }, bus.ErrInvalidInput},
		{"wildcard session id", func() error { _, err := api.GetSession(ctx, "*"); return err }, bus.ErrInvalidInput},
		{"subject session id", func() error { _, err := api.GetSession(ctx, "a.>"); return err }, bus.ErrInvalidInput},
		{"empty attribute key", func() error { return api.SetAttribute(ctx, s.SessionID, "", "v") }, bus.ErrInvalidInput},
		{"huge attribute", func() error {
			return api.SetAttribute(ctx, s.SessionID, "big", strings.Repeat("v", 900*1024))
		}, bus.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.call(), tt.wantErr)
		})
	}
	got, err := api.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Empty(t, got.Attributes, "bad input changed nothing")
	list, err := api.SessionsByLogin(ctx, "u")
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func testServices(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	secret, err := api.RegisterService(ctx, bus.ServiceCredential{ServiceID: "order-api", ServiceName: "Order API",
		Permissions: []string{"session.read", "events.subscribe"}}, "")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(secret), 32, "a generated secret is long")
	_, err = api.RegisterService(ctx, bus.ServiceCredential{ServiceID: "order-api"}, "")
	require.ErrorIs(t, err, bus.ErrServiceExists)

	cred, err := api.VerifyService(ctx, "order-api", secret)
	require.NoError(t, err)
	assert.Equal(t, "Order API", cred.ServiceName)
	assert.Equal(t, []string{"session.read", "events.subscribe"}, cred.Permissions, "permissions are kept as given")
	_, err = api.VerifyService(ctx, "order-api", secret+"x")
	require.ErrorIs(t, err, bus.ErrUnauthenticated)
	_, err = api.VerifyService(ctx, "nobody", secret)
	require.ErrorIs(t, err, bus.ErrUnauthenticated, "an unknown id fails like a wrong secret")

	given, err := api.RegisterService(ctx, bus.ServiceCredential{ServiceID: "pay-api"}, "a-given-secret-of-some-length")
	require.NoError(t, err)
	assert.Equal(t, "a-given-secret-of-some-length", given)
}

// testConcurrentAttributes: 32 writers each set 50 distinct attributes on
// one session; compare-and-set with retry must land all 1,600.
func testConcurrentAttributes(t *testing.T, api bus.Sessions) {
	if testing.Short() {
		t.Skip("1,600 contended writes")
	}
	ctx := ctxFor(t)
	s, err := api.CreateSession(ctx, "u", "t")
	require.NoError(t, err)
	const writers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := api.SetAttribute(ctx, s.SessionID, fmt.Sprintf("w%d-k%d", w, i), "v"); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := api.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Len(t, got.Attributes, writers*each, "no update lost")
}

// testDeleteAllRacingCreates: creates race DeleteAllSessions. Once it
// returns and the creates are done, no session created before the call is
// left, and the login's list holds exactly the survivors (no index drift).
func testDeleteAllRacingCreates(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	const login, n = "racer", 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []string
	firstDone := make(chan struct{}, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := api.CreateSession(ctx, login, fmt.Sprintf("race-%d", i))
			firstDone <- struct{}{}
			if err != nil {
				assert.ErrorIs(t, err, bus.ErrConflict, "a create racing logout-all fails only with a conflict")
				return
			}
			mu.Lock()
			created = append(created, s.SessionID)
			mu.Unlock()
		}()
	}
	for range 5 { // let some land, so the delete races the rest
		<-firstDone
	}
	called := time.Now()
	_, err := api.DeleteAllSessions(ctx, login)
	require.NoError(t, err)
	wg.Wait()

	survivors := map[string]bool{}
	for _, id := range created {
		s, err := api.GetSession(ctx, id)
		if err != nil {
			require.ErrorIs(t, err, bus.ErrSessionNotFound)
			continue
		}
		survivors[id] = true
		assert.True(t, s.CreateTime.After(called), "session created before DeleteAllSessions survived it")
	}
	list, err := api.SessionsByLogin(ctx, login)
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, s := range list {
		listed[s.SessionID] = true
	}
	assert.Equal(t, survivors, listed, "the list holds exactly the live sessions")
	assert.Less(t, len(survivors), len(created), "the delete raced nothing")
}

// testExpiry: with a 2 s idle timeout, an unused session expires together
// with its index entries, while one refreshed every 250 ms lives on. It
// waits for the expiry by state (the login's list, which does not touch),
// not for a fixed time: the server's expiry lag is measured elsewhere.
func testExpiry(t *testing.T, api bus.Sessions) {
	ctx := ctxFor(t)
	idle, err := api.CreateSession(ctx, "exp", "t-idle")
	require.NoError(t, err)
	kept, err := api.CreateSession(ctx, "exp", "t-kept")
	require.NoError(t, err)

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := api.RefreshSession(ctx, kept.SessionID)
		require.NoError(t, err, "a refreshed session lives on")
		list, err := api.SessionsByLogin(ctx, "exp")
		require.NoError(t, err)
		if len(list) == 1 {
			assert.Equal(t, kept.SessionID, list[0].SessionID)
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the unused session never expired")
		}
	}
	_, err = api.GetSession(ctx, idle.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	_, err = api.GetSessionByToken(ctx, "t-idle")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
}
