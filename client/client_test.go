package client_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/natsapi"
)

// runBus serves a memory-store Manager on its own connection to srv.
func runBus(tb testing.TB, srv *server.Server, opts ...nats.Option) *bus.Manager {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	m, err := bus.New(bus.NewMemoryStore(), "bus", time.Hour, bus.WithLogger(quiet))
	require.NoError(tb, err)
	svc, err := natsapi.New(natstest.Connect(tb, srv, opts...), m, natsapi.WithLogger(quiet))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, svc.Close()) })
	return m
}

func newClient(tb testing.TB, nc *nats.Conn, opts ...client.Option) *client.Client {
	tb.Helper()
	c, err := client.New(nc, opts...)
	require.NoError(tb, err)
	return c
}

func TestClient_RoundTrip(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	runBus(t, srv)
	c := newClient(t, natstest.Connect(t, srv), client.WithServiceID("svc-a"))
	ctx := context.Background()

	s, err := c.CreateSession(ctx, "u.1 *>", "tok")
	require.NoError(t, err)
	assert.Equal(t, "tok", s.Token)
	assert.Equal(t, "svc-a", s.ServiceID)
	require.NoError(t, c.SetAttribute(ctx, s.SessionID, "role", "admin"))
	v, ok, err := c.GetAttribute(ctx, s.SessionID, "role")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "admin", v)
	got, err := c.GetSessionByToken(ctx, "tok")
	require.NoError(t, err)
	assert.Empty(t, got.Token)
	got.Attributes["lang"] = "fr"
	upd, err := c.UpdateSession(ctx, got)
	require.NoError(t, err)
	assert.Greater(t, upd.Revision, got.Revision)
	_, err = c.UpdateSession(ctx, got)
	require.ErrorIs(t, err, bus.ErrConflict)

	_, err = c.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrSessionNotFound)
	assert.Equal(t, bus.ErrSessionNotFound.Error(), err.Error(), "the same message as in-process")
	_, err = c.GetSession(ctx, "a.*")
	require.ErrorIs(t, err, bus.ErrInvalidInput)
	_, err = c.CreateSession(ctx, "u.1 *>", "tok")
	require.ErrorIs(t, err, bus.ErrTokenInUse)

	secret, err := c.RegisterService(ctx, bus.ServiceCredential{ServiceID: "svc-b", Permissions: []string{bus.PermSessionRead}}, "")
	require.NoError(t, err)
	cred, err := c.VerifyService(ctx, "svc-b", secret)
	require.NoError(t, err)
	assert.Equal(t, []string{bus.PermSessionRead}, cred.Permissions)
	_, err = c.VerifyService(ctx, "svc-b", "wrong-wrong-wrong")
	require.ErrorIs(t, err, bus.ErrUnauthenticated)
	list, err := c.ListServices(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, c.RemoveService(ctx, "svc-b"))

	n, err := c.DeleteAllSessions(ctx, "u.1 *>")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	sessions, err := c.SessionsByLogin(ctx, "u.1 *>")
	require.NoError(t, err)
	assert.Empty(t, sessions)
}

func TestNew_InvalidConfig(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t, natstest.RunServer(t))
	for _, opt := range []client.Option{client.WithServiceID("a.b"), client.WithServiceID(""), client.WithTimeout(0)} {
		_, err := client.New(nc, opt)
		require.ErrorIs(t, err, bus.ErrInvalidConfig)
	}
	_, err := client.New(nil)
	require.ErrorIs(t, err, bus.ErrInvalidConfig)
	c := newClient(t, nc)
	assert.Equal(t, client.DefaultServiceID, c.ServiceID())
}

// TestClient_NoBus fails at once, not after the timeout.
func TestClient_NoBus(t *testing.T) {
	t.Parallel()
	c := newClient(t, natstest.Connect(t, natstest.RunServer(t)), client.WithTimeout(5*time.Second))
	start := time.Now()
	_, err := c.GetSession(context.Background(), "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrUnavailable)
	assert.Less(t, time.Since(start), 100*time.Millisecond)
}

func TestClient_Deadline(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	// A responder that never answers.
	sub, err := nc.QueueSubscribe("sessionbus.read.*.*", "q", func(*nats.Msg) {})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	c := newClient(t, natstest.Connect(t, srv), client.WithTimeout(50*time.Millisecond))
	_, err = c.GetSession(context.Background(), "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestClient_PermissionDenied: a publish the server refuses fails with
// ErrPermissionDenied within 100 ms, and the client stays usable.
func TestClient_PermissionDenied(t *testing.T) {
	t.Parallel()
	opts := natstest.Options(t)
	opts.JetStream = false
	opts.Users = []*server.User{
		{Username: "bus", Password: "bus-pw"},
		{Username: "svc-a", Password: "a-pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"sessionbus.read.*.svc-a"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}},
	}
	srv := natstest.RunServerWithOptions(t, opts)
	runBus(t, srv, nats.UserInfo("bus", "bus-pw"))

	var prevCalled = make(chan error, 16)
	nc := natstest.Connect(t, srv, nats.UserInfo("svc-a", "a-pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case prevCalled <- err:
			default:
			}
		}))
	c := newClient(t, nc, client.WithServiceID("svc-a"))
	impostor := newClient(t, nc, client.WithServiceID("svc-b"))
	ctx := context.Background()
	const unknownID = "00000000-0000-4000-8000-000000000000"

	tests := []struct {
		name string
		call func() error
	}{
		{"write class", func() error { _, err := c.CreateSession(ctx, "u1", "t1"); return err }},
		{"admin class", func() error { _, err := c.ListServices(ctx); return err }},
		{"other caller id", func() error { _, err := impostor.GetSession(ctx, unknownID); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call()
			took := time.Since(start)
			require.ErrorIs(t, err, bus.ErrPermissionDenied)
			assert.Less(t, took, 100*time.Millisecond)
			// Allowed calls still work on the same connection.
			_, err = c.GetSession(ctx, unknownID)
			require.ErrorIs(t, err, bus.ErrSessionNotFound)
		})
	}
	select {
	case err := <-prevCalled:
		assert.True(t, errors.Is(err, nats.ErrPermissionViolation), "chained handler got %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the handler set before the client was not called")
	}
}
