package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClient_NoServerDependency keeps package client light: a service that
// imports it to connect (ConnectOptions, CredsFileOptions) must not link
// nats-server, nor package auth, which does. Only tests may import them.
func TestClient_NoServerDependency(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command lists the package's dependencies")
	out, err := exec.Command(goTool, "list", "-deps", "github.com/session-bus/session-bus/client").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/nats-io/nats.go", "go list listed the dependencies")
	for _, dep := range deps {
		for _, banned := range []string{
			"github.com/nats-io/nats-server",
			"github.com/session-bus/session-bus/auth",
			"github.com/session-bus/session-bus/internal/natstest",
		} {
			assert.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "client links %s", dep)
		}
	}
}
