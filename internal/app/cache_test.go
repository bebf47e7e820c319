package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/sessioncache"
)

// In accounts mode a service with session.read alone gets the change
// notices its cache follows (through its account's import), and its
// cache drops a session another service ends; a service without
// session.read gets none, so its cache never answers.
func TestApp_CacheInAccountsMode(t *testing.T) {
	t.Parallel()
	a, err := Start(context.Background(), accountsConfig(t.TempDir()), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	admin := connectCreds(t, a, a.AdminCredsPath(), auth.AdminServiceID)
	register := func(id string, perms ...string) string {
		creds, err := admin.RegisterService(ctx, bus.ServiceCredential{ServiceID: id, Permissions: perms}, "")
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), id+".creds")
		require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
		return path
	}
	cached := func(path, id string) *client.Client {
		nc, err := nats.Connect(a.ClientURL(), nats.UserCredentials(path))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		c, err := client.New(nc, client.WithServiceID(id), client.WithCache(client.CacheConfig{}))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	reader := cached(register("reader", auth.PermSessionRead), "reader")
	writer := cached(register("writer", auth.PermSessionWrite), "writer")

	require.Eventually(t, func() bool { return reader.CacheStats().Current }, natstest.Patience, 5*time.Millisecond)
	s, err := admin.CreateSession(ctx, "u", "tok")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		before := reader.CacheStats().Hits
		_, err := reader.GetSessionByToken(ctx, "tok")
		require.NoError(t, err)
		return reader.CacheStats().Hits > before
	}, natstest.Patience, time.Millisecond)
	require.NoError(t, admin.DeleteSession(ctx, s.SessionID))
	require.Eventually(t, func() bool {
		_, err := reader.GetSessionByToken(ctx, "tok")
		return err != nil
	}, natstest.Patience, time.Millisecond)
	_, err = reader.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrSessionNotFound)

	time.Sleep(10 * sessioncache.HeartbeatInterval) // heartbeats would have come by now
	assert.False(t, writer.CacheStats().Current, "no session.read, no notices")
}

// An account made before the cache notices existed gains their import
// when the bus starts; the service's next rotation gives its user the
// subscription too.
func TestApp_OlderAccountsGainTheCacheImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Start(context.Background(), accountsConfig(dir), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	admin := connectCreds(t, a, a.AdminCredsPath(), auth.AdminServiceID)
	_, err = admin.RegisterService(ctx, bus.ServiceCredential{ServiceID: "reader", Permissions: []string{auth.PermSessionRead}}, "")
	require.NoError(t, err)
	list, err := a.manager.ListServices(ctx)
	require.NoError(t, err)
	var svc bus.ServiceCredential
	for _, c := range list {
		if c.ServiceID == "reader" {
			svc = c
		}
	}
	require.NotEmpty(t, svc.Account)

	// Make it an account of an older release: no cache import.
	lookup := func() *jwt.AccountClaims {
		msg, err := a.sys.Request("$SYS.REQ.ACCOUNT."+svc.Account+".CLAIMS.LOOKUP", nil, natstest.Patience)
		require.NoError(t, err)
		ac, err := jwt.DecodeAccountClaims(string(msg.Data))
		require.NoError(t, err)
		return ac
	}
	hasCacheImport := func(ac *jwt.AccountClaims) bool {
		for _, im := range ac.Imports {
			if string(im.Subject) == bus.CacheSubject {
				return true
			}
		}
		return false
	}
	ac := lookup()
	require.True(t, hasCacheImport(ac))
	var kept jwt.Imports
	for _, im := range ac.Imports {
		if string(im.Subject) != bus.CacheSubject {
			kept = append(kept, im)
		}
	}
	ac.Imports = kept
	token, err := ac.Encode(a.opKeys.Operator)
	require.NoError(t, err)
	_, err = a.sys.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(token), natstest.Patience)
	require.NoError(t, err)
	require.False(t, hasCacheImport(lookup()))

	require.NoError(t, a.Close())
	a, err = Start(context.Background(), accountsConfig(dir), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	assert.True(t, hasCacheImport(lookup()), "the restart brought the import back")
}

// A writer that announces nothing (a library Manager on the same bucket,
// or a bus process of an older release) is covered by the active relay's
// notices: a cached copy is dropped within the relay's lag.
func TestApp_RelayNoticesWritesThatAnnounceNothing(t *testing.T) {
	t.Parallel()
	a, err := Start(context.Background(), accountsConfig(t.TempDir()), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	nc, err := nats.Connect(a.ClientURL(), nats.UserCredentials(a.AdminCredsPath()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c, err := client.New(nc, client.WithServiceID(auth.AdminServiceID), client.WithCache(client.CacheConfig{TouchInterval: time.Hour}))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.Eventually(t, func() bool { return c.CacheStats().Current }, natstest.Patience, 5*time.Millisecond)

	silent, err := bus.New(a.store, "library", time.Hour, bus.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	s, err := silent.CreateSession(ctx, "u", "tok")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		before := c.CacheStats().Hits
		_, err := c.GetSession(ctx, s.SessionID)
		require.NoError(t, err)
		return c.CacheStats().Hits > before
	}, natstest.Patience, time.Millisecond)
	require.NoError(t, silent.DeleteSession(ctx, s.SessionID))
	require.Eventually(t, func() bool {
		_, err := c.GetSession(ctx, s.SessionID)
		return err != nil
	}, natstest.Patience, time.Millisecond, "the relay's notice drops the copy")
}
