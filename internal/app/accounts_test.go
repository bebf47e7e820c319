package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

func accountsConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", dir, AuthAccounts
	return cfg
}

func connectCreds(t *testing.T, a *App, creds, id string) *client.Client {
	t.Helper()
	nc, err := nats.Connect(a.ClientURL(), nats.UserCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c, err := client.New(nc, client.WithServiceID(id), client.WithTimeout(10*time.Second))
	require.NoError(t, err)
	return c
}

// In accounts mode the bus writes the admin's .creds file; the admin
// registers a service through the bus and gets the service's .creds,
// which logs in with the service's permissions and nothing more.
func TestApp_AccountsMode(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := Start(context.Background(), accountsConfig(dir), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	require.True(t, a.AdminCredsCreated())
	require.Equal(t, auth.AdminCredsPath(dir), a.AdminCredsPath())

	ctx := context.Background()
	admin := connectCreds(t, a, a.AdminCredsPath(), auth.AdminServiceID)
	creds, err := admin.RegisterService(ctx, bus.ServiceCredential{ServiceID: "login-svc",
		Permissions: []string{auth.PermSessionRead, auth.PermSessionWrite}}, "")
	require.NoError(t, err)
	require.Contains(t, creds, "BEGIN NATS USER JWT")
	path := filepath.Join(t.TempDir(), "login-svc.creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	svc := connectCreds(t, a, path, "login-svc")
	s, err := svc.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	_, err = svc.ListServices(ctx)
	require.Error(t, err, "a service without service.admin cannot list services")

	// The service's nkey seed is nowhere but in its file: not in any
	// bucket, not in the logs.
	var seed string
	for _, line := range strings.Split(creds, "\n") {
		if strings.HasPrefix(line, "SU") {
			seed = line
		}
	}
	require.NotEmpty(t, seed)
	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	for name := range js.KeyValueStoreNames(ctx).Name() {
		kv, err := js.KeyValue(ctx, name)
		require.NoError(t, err)
		keys, err := kv.ListKeys(ctx)
		require.NoError(t, err)
		for key := range keys.Keys() {
			if e, err := kv.Get(ctx, key); err == nil {
				assert.NotContains(t, string(e.Value()), seed, "bucket %s key %s", name, key)
			}
		}
	}
	assert.NotContains(t, logs.String(), seed)

	// Anonymous and password logins are refused.
	_, err = nats.Connect(a.ClientURL())
	require.Error(t, err)
	_, err = nats.Connect(a.ClientURL(), nats.UserInfo("login-svc", "whatever-secret-1234"))
	require.Error(t, err)

	// A restart keeps the accounts (the resolver persists them) and the
	// admin's file.
	require.NoError(t, a.Close())
	a, err = Start(context.Background(), accountsConfig(dir), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	assert.False(t, a.AdminCredsCreated())
	svc = connectCreds(t, a, path, "login-svc")
	got, err := svc.GetSessionByToken(ctx, "tok-1")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, got.SessionID)
}

// A data dir of callout mode moves to accounts mode without loss:
// sessions stay readable by token, and each registered service gets an
// account and a credentials file under auth/creds.
func TestApp_MigrateCalloutDataDir(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", dir, AuthCallout
	old, err := Start(context.Background(), cfg, log)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = old.Manager().RegisterService(ctx, bus.ServiceCredential{ServiceID: "login-svc",
		Permissions: []string{auth.PermSessionRead, auth.PermSessionWrite}}, "")
	require.NoError(t, err)
	s, err := old.Manager().CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	require.NoError(t, old.Close())

	a, err := Start(context.Background(), accountsConfig(dir), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	path := filepath.Join(dir, "auth", "creds", "login-svc.creds")
	fi, err := os.Stat(path)
	require.NoError(t, err, "the migrated service's credentials are written")
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	svc := connectCreds(t, a, path, "login-svc")
	got, err := svc.GetSessionByToken(ctx, "tok-1")
	require.NoError(t, err, "a session of the old data dir is found by its token")
	assert.Equal(t, s.SessionID, got.SessionID)
	_, err = svc.CreateSession(ctx, "u2", "tok-2")
	require.NoError(t, err)

	rec, err := a.store.GetService(ctx, "login-svc")
	require.NoError(t, err)
	assert.NotEmpty(t, rec.Credential.Account)
	assert.Empty(t, rec.SecretHash, "the old secret logs in no more")
	_, err = os.Stat(filepath.Join(dir, "auth", "admin.creds"))
	require.NoError(t, err, "the admin gets a .creds file")
}

// Logins the server refuses are counted per host and minute: a line and a
// login_failed audit record at the 1st and 10th, not one per attempt.
func TestApp_AccountsFailedLoginsCounted(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := Start(context.Background(), accountsConfig(t.TempDir()), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	for range 12 {
		_, err := nats.Connect(a.ClientURL(), nats.UserInfo("admin", "not-a-jwt"), nats.NoReconnect())
		require.Error(t, err)
	}
	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	cons, err := js.OrderedConsumer(context.Background(), "SESSION_AUDIT", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sessionaudit.service." + bus.ServiceLoginFailed + "." + bus.FailedLoginID}})
	require.NoError(t, err)
	var counts []int
	require.Eventually(t, func() bool {
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			var ev bus.ServiceEvent
			require.NoError(t, json.Unmarshal(m.Data(), &ev))
			assert.Equal(t, "127.0.0.1", ev.Actor)
			counts = append(counts, ev.Count)
		}
		return len(counts) >= 2
	}, natstest.Patience, 20*time.Millisecond)
	assert.Equal(t, []int{1, 10}, counts, "records at the 1st and 10th refused login only")
	assert.Equal(t, 2, strings.Count(logs.String(), "logins refused"), logs.String())
}
