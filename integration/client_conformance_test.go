package integration_test

import (
	"testing"
	"time"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
)

// TestClient_Conformance runs the API suite through the client against a
// bus on an embedded server with the JetStream KV store.
func TestClient_Conformance(t *testing.T) {
	storetest.RunAPI(t, func(tb testing.TB, idle time.Duration) bus.Sessions {
		return newBusEnv(tb, 1, idle).client
	})
}
