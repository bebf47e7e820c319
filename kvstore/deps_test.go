package kvstore_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStore_ImportsNoConsumer: imports follow the data. The store offers
// its changes through bus.ChangeFeed; it never imports the event relay (or
// anything else that consumes it) to learn a format.
func TestStore_ImportsNoConsumer(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command lists the package's dependencies")
	out, err := exec.Command(goTool, "list", "-deps", "github.com/session-bus/session-bus/kvstore").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/session-bus/session-bus/bus", "go list listed the dependencies")
	for _, dep := range deps {
		for _, consumer := range []string{"events", "natsapi", "client", "auth", "internal/app"} {
			assert.NotEqual(t, "github.com/session-bus/session-bus/"+consumer, dep, "kvstore imports %s", dep)
		}
	}
}
