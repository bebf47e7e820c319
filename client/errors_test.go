package client_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestClient_ErrorsMatchInProcess makes the same bad calls in-process and
// over NATS: errors.Is agrees, and the client's text is the sentinel's
// followed by the detail the wire message kept.
func TestClient_ErrorsMatchInProcess(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	m := runBus(t, srv)
	c := newClient(t, natstest.Connect(t, srv), client.WithServiceID("svc-a"))
	ctx := context.Background()
	_, err := m.CreateSession(ctx, "u", "tok")
	require.NoError(t, err)

	tests := []struct {
		name   string
		call   func(bus.Sessions) error
		wantIs error
	}{
		{"bad session id", func(api bus.Sessions) error { _, err := api.GetSession(ctx, "a.*"); return err }, bus.ErrInvalidInput},
		{"unknown session", func(api bus.Sessions) error {
			_, err := api.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
			return err
		}, bus.ErrSessionNotFound},
		{"token in use", func(api bus.Sessions) error { _, err := api.CreateSession(ctx, "v", "tok"); return err }, bus.ErrTokenInUse},
		{"unknown permission", func(api bus.Sessions) error {
			_, err := api.RegisterService(ctx, bus.ServiceCredential{ServiceID: "svc-x", Permissions: []string{"session.reed"}}, "")
			return err
		}, bus.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local, remote := tt.call(m), tt.call(c)
			require.ErrorIs(t, local, tt.wantIs)
			require.ErrorIs(t, remote, tt.wantIs)
			assert.Equal(t, "bus: "+bus.ErrorMessage(local), remote.Error())
		})
	}
}
