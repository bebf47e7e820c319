package client_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/depstest"
)

// TestClient_NoServerDependency keeps package client light: a service that
// imports it to connect (ConnectOptions, CredsFileOptions) must not link
// nats-server, nor package auth, which does. Only tests may import them.
func TestClient_NoServerDependency(t *testing.T) {
	t.Parallel()
	deps := depstest.List(t, "github.com/session-bus/session-bus/client")
	require.Contains(t, deps, "github.com/nats-io/nats.go", "go list listed the dependencies")
	for _, banned := range []string{
		"github.com/nats-io/nats-server",
		"github.com/session-bus/session-bus/auth",
		"github.com/session-bus/session-bus/internal/natstest",
	} {
		assert.False(t, depstest.Imports(deps, banned), "client links %s", banned)
	}
}
