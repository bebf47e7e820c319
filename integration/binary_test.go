package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// buildBinary builds cmd/session-bus into a temp dir.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "session-bus")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/session-bus").CombinedOutput()
	require.NoError(tb, err, "go build: %s", out)
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// busProcess is `session-bus serve` running as a child process.
type busProcess struct {
	cmd    *exec.Cmd
	url    string
	exited chan error
}

// startBinary runs `session-bus serve` and waits until it says it listens.
func startBinary(tb testing.TB, bin string, args ...string) *busProcess {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	cmd.Stderr = io.Discard
	require.NoError(tb, cmd.Start())
	p := &busProcess{cmd: cmd, exited: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "session-bus listening on ") {
				ready <- strings.Fields(line)[3]
			}
		}
		p.exited <- cmd.Wait()
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case url := <-ready:
		p.url = strings.TrimSuffix(url, ",")
	case err := <-p.exited:
		tb.Fatalf("session-bus exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		tb.Fatal("session-bus not ready within 30s")
	}
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *busProcess) stop(tb testing.TB) error {
	tb.Helper()
	require.NoError(tb, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		return err
	case <-time.After(20 * time.Second):
		tb.Fatal("session-bus did not stop within 20s of SIGTERM")
		return nil
	}
}

// addService registers a service through `session-bus service add` and
// returns a connection logged in as it.
func addService(t *testing.T, bin, url, dataDir, id, perms string) *nats.Conn {
	t.Helper()
	credsFile := filepath.Join(t.TempDir(), id+".creds")
	out, err := exec.Command(bin, "service", "add", id, "--permissions", perms, "--nats-url", url,
		"--admin-creds", filepath.Join(dataDir, "auth", "admin.creds"), "--creds-out", credsFile).CombinedOutput()
	require.NoError(t, err, "service add: %s", out)
	nc, err := nats.Connect(url, nats.UserCredentials(credsFile))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func TestBinary_ServeRoundTripAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", dir}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	p := startBinary(t, bin, args...)
	_, err := nats.Connect(p.url)
	require.Error(t, err, "the embedded server refuses anonymous connections")

	nc := addService(t, bin, p.url, dir, "login-svc", "session.read,session.write")
	c, err := client.New(nc, client.WithServiceID("login-svc"))
	require.NoError(t, err)
	s, err := c.CreateSession(ctx, "user-1", "token-1")
	require.NoError(t, err)
	require.NoError(t, c.SetAttribute(ctx, s.SessionID, "role", "admin"))
	nc.Close()
	require.NoError(t, p.stop(t), "a clean exit on SIGTERM")

	p = startBinary(t, bin, args...)
	nc = addService(t, bin, p.url, dir, "order-svc", "session.read")
	c, err = client.New(nc, client.WithServiceID("order-svc"))
	require.NoError(t, err)
	got, err := c.GetSessionByToken(ctx, "token-1")
	require.NoError(t, err, "a second start finds the earlier sessions")
	assert.Equal(t, s.SessionID, got.SessionID)
	assert.Equal(t, "admin", got.Attributes["role"])
	assert.Equal(t, "login-svc", got.ServiceID)
	require.ErrorIs(t, c.DeleteSession(ctx, s.SessionID), bus.ErrPermissionDenied, "order-svc may only read")
	nc.Close()
	require.NoError(t, p.stop(t))
}

func TestBinary_Usage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "session-bus ")
	out, err = exec.Command(bin, "serve", "--help").CombinedOutput()
	require.NoError(t, err)
	for _, flag := range []string{"-nats-url", "-listen", "-data-dir", "-bucket", "-replicas", "-idle-timeout",
		"-max-lifetime", "-touch-interval", "-max-sessions", "-sync", "SESSION_BUS_NATS_URL"} {
		assert.Contains(t, string(out), flag)
	}
	err = exec.Command(bin, "serve", "--sync", "sometimes", "--listen", "127.0.0.1:1").Run()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
}

func TestBinary_EventsTail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startBinary(t, bin, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", dir)
	nc := addService(t, bin, p.url, dir, "login-svc", "session.write")
	c, err := client.New(nc, client.WithServiceID("login-svc"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.CreateSession(ctx, "tail-user", "tail-token")
	require.NoError(t, err)

	tail := exec.CommandContext(ctx, bin, "events", "tail", "--nats-url", p.url, "--since", "1m", "--type", "created",
		"--service-creds", filepath.Join(dir, "auth", "admin.creds"))
	out, err := tail.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, tail.Start())
	t.Cleanup(func() { _ = tail.Process.Kill(); _ = tail.Wait() })
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan(), "tail printed nothing")
	line := lines.Text()
	assert.Contains(t, line, `"type":"session.created"`)
	assert.Contains(t, line, s.SessionID)
	assert.Contains(t, line, `"service_id":"login-svc"`)
	assert.NotContains(t, line, "tail-token", "events never carry a token")
	require.NoError(t, p.stop(t))
}

func TestBinary_ServiceLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startBinary(t, bin, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", dir)
	admin := filepath.Join(dir, "auth", "admin.creds")
	cli := func(args ...string) string {
		out, err := exec.Command(bin, append(args, "--nats-url", p.url, "--admin-creds", admin)...).Output()
		require.NoError(t, err, "%v", args)
		return string(out)
	}
	credsFile := filepath.Join(t.TempDir(), "pay.creds")
	cli("service", "add", "pay-api", "--permissions", "session.read", "--creds-out", credsFile)
	assert.Contains(t, cli("service", "list", "--json"), `"service_id":"pay-api"`)
	oldCreds := filepath.Join(t.TempDir(), "pay-old.creds")
	require.NoError(t, os.Rename(credsFile, oldCreds))
	old, err := nats.Connect(p.url, nats.UserCredentials(oldCreds), nats.NoReconnect())
	require.NoError(t, err)
	defer old.Close()

	// Rotate without grace: the old credentials' connection is closed and
	// they log in no more; the new ones do.
	cli("service", "rotate", "pay-api", "--grace", "0s", "--creds-out", credsFile)
	require.Eventually(t, old.IsClosed, natstest.Patience, 50*time.Millisecond, "the old credentials' connection is closed")
	_, err = nats.Connect(p.url, nats.UserCredentials(oldCreds), nats.NoReconnect())
	require.Error(t, err, "the old credentials are refused after a rotation without grace")
	nc, err := nats.Connect(p.url, nats.UserCredentials(credsFile), nats.NoReconnect())
	require.NoError(t, err)
	defer nc.Close()

	// Remove: the live connection is closed.
	cli("service", "remove", "pay-api")
	require.Eventually(t, nc.IsClosed, natstest.Patience, 50*time.Millisecond, "a removed service keeps its connection")
	_, err = nats.Connect(p.url, nats.UserCredentials(credsFile), nats.NoReconnect())
	require.Error(t, err)
	require.NoError(t, p.stop(t))
}
