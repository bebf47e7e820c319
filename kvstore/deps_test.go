package kvstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/depstest"
)

// TestStore_ImportsNoConsumer: imports follow the data. The store offers
// its changes through bus.ChangeFeed; it never imports the event relay (or
// anything else that consumes it) to learn a format.
func TestStore_ImportsNoConsumer(t *testing.T) {
	t.Parallel()
	deps := depstest.List(t, "github.com/session-bus/session-bus/kvstore")
	require.Contains(t, deps, "github.com/session-bus/session-bus/bus", "go list listed the dependencies")
	for _, consumer := range []string{"events", "natsapi", "client", "auth", "internal/app"} {
		assert.False(t, depstest.Imports(deps, "github.com/session-bus/session-bus/"+consumer), "kvstore imports %s", consumer)
	}
}
