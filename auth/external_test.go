package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/app"
	"github.com/session-bus/session-bus/internal/natstest"
)

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runExternalServer builds nats-server from the module this repo depends
// on, starts it with a config holding text (auth.ServerConfig's or
// auth.OperatorServerConfig's), and returns its client URL. The process is
// killed when the test ends.
func runExternalServer(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build nats-server: %s", out)

	portsDir := filepath.Join(dir, "ports")
	require.NoError(t, os.Mkdir(portsDir, 0o700))
	conf := fmt.Sprintf("server_name: external\nlisten: \"127.0.0.1:-1\"\nports_file_dir: %q\njetstream {\n  store_dir: %q\n}\n%s",
		portsDir, filepath.Join(dir, "js"), text)
	confPath := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))

	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", logs.String())
		}
	})

	// With port -1 the server writes its URLs to <ports_file_dir>/<exe>_<pid>.ports.
	portsFile := filepath.Join(portsDir, fmt.Sprintf("nats-server_%d.ports", cmd.Process.Pid))
	var url string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		data, err := os.ReadFile(portsFile)
		if !assert.NoError(c, err) {
			return
		}
		var ports struct {
			Nats []string `json:"nats"`
		}
		if assert.NoError(c, json.Unmarshal(data, &ports)) && assert.NotEmpty(c, ports.Nats) {
			url = ports.Nats[0]
		}
	}, natstest.Patience, 20*time.Millisecond, "nats-server did not start: %s", logs)
	return url
}

func TestExternalServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	t.Parallel()
	keys, err := auth.Bootstrap(t.TempDir())
	require.NoError(t, err)
	text, err := auth.ServerConfig(keys)
	require.NoError(t, err)
	url := runExternalServer(t, text)
	e := startBus(t, url, keys, envConfig{watch: true})
	ctx := context.Background()

	// Anonymous and wrong logins are refused. A refusal is an
	// authorization error, or, on a loaded machine, a broken handshake:
	// an external server sends its short first PING (which only an
	// embedded server can turn off) before the callout's answer arrives.
	refused := func(err error) {
		t.Helper()
		require.Error(t, err)
		if !errors.Is(err, nats.ErrAuthorization) {
			assert.Contains(t, err.Error(), "expected 'PONG', got 'PING'", "refused another way")
		}
	}
	_, err = nats.Connect(url, nats.NoReconnect(), nats.Timeout(natstest.Patience))
	refused(err)
	secret := e.register(t, "svc-ext", auth.PermSessionRead, auth.PermSessionWrite)
	_, err = e.connect(t, "svc-ext", secret+"x", nats.NoReconnect())
	refused(err)

	// An authenticated round trip.
	sc, err := e.connect(t, "svc-ext", secret)
	require.NoError(t, err)
	c, err := newClient(sc, "svc-ext")
	require.NoError(t, err)
	s, err := c.CreateSession(ctx, "ivy", "token-ivy-0123456789abcdef")
	require.NoError(t, err)
	assert.Equal(t, "svc-ext", s.ServiceID)
	got, err := c.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "ivy", got.LoginID)

	// A denied call fails at once: waiting out the client's timeout would
	// give unavailable, not permission denied.
	_, err = c.ListServices(ctx)
	require.ErrorIs(t, err, bus.ErrPermissionDenied)

	// Removal ends the service's access.
	require.NoError(t, e.m.RemoveService(ctx, "svc-ext"))
	require.Eventually(t, func() bool { return !sc.IsConnected() }, natstest.Patience, 10*time.Millisecond)
	_, err = e.connect(t, "svc-ext", secret, nats.NoReconnect())
	refused(err)
	assert.False(t, strings.Contains(e.logs.String(), secret), "no secret in the bus log")
}

// TestExternalServer_Accounts: a nats-server configured from
// `auth-config --auth accounts` runs the bus in operator mode: the bus
// logs in to its account with keys from the data dir, pushes service
// accounts to the server's resolver, and services log in with .creds.
func TestExternalServer_Accounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	t.Parallel()
	dataDir := t.TempDir()
	keys, err := auth.BootstrapOperator(dataDir)
	require.NoError(t, err)
	text, err := auth.OperatorServerConfig(keys, filepath.Join(t.TempDir(), "jwt"))
	require.NoError(t, err)
	url := runExternalServer(t, text)

	cfg := app.DefaultConfig()
	cfg.NATSURL, cfg.DataDir, cfg.Auth = url, dataDir, app.AuthAccounts
	ctx := natstest.Context(t)
	a, err := app.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })

	_, err = nats.Connect(url, nats.NoReconnect(), nats.Timeout(natstest.Patience))
	require.Error(t, err, "anonymous logins are refused")
	admin, err := nats.Connect(url, nats.UserCredentials(a.AdminCredsPath()))
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	ac, err := client.New(admin, client.WithServiceID(auth.AdminServiceID))
	require.NoError(t, err)
	creds, err := ac.RegisterService(ctx, bus.ServiceCredential{ServiceID: "svc-ext",
		Permissions: []string{auth.PermSessionRead, auth.PermSessionWrite}}, "")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "svc-ext.creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	sc, err := nats.Connect(url, nats.UserCredentials(path))
	require.NoError(t, err)
	t.Cleanup(sc.Close)
	c, err := client.New(sc, client.WithServiceID("svc-ext"))
	require.NoError(t, err)
	s, err := c.CreateSession(ctx, "ivy", "token-ivy-0123456789abcdef")
	require.NoError(t, err)
	got, err := c.GetSessionByToken(ctx, "token-ivy-0123456789abcdef")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, got.SessionID)

	require.NoError(t, ac.RemoveService(ctx, "svc-ext"))
	require.Eventually(t, sc.IsClosed, natstest.Patience, 10*time.Millisecond, "removal closes the service's connection")
}
