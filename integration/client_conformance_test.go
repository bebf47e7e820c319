package integration_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestClient_Conformance runs the API suite through the client against a
// bus on an embedded server with the JetStream KV store.
func TestClient_Conformance(t *testing.T) {
	storetest.RunAPI(t, func(tb testing.TB, idle time.Duration) bus.Sessions {
		return newBusEnv(tb, 1, idle).client
	})
}

// TestClient_ConformanceCached runs it through a client with a cache,
// against two bus instances (each with its own cache): every read the
// suite checks after a write sees that write.
func TestClient_ConformanceCached(t *testing.T) {
	storetest.RunAPI(t, func(tb testing.TB, idle time.Duration) bus.Sessions {
		env := newBusEnv(tb, 2, idle)
		c, err := client.New(natstest.Connect(tb, env.srv), client.WithServiceID("it-cached"), client.WithCache(client.CacheConfig{}))
		require.NoError(tb, err)
		tb.Cleanup(c.Close)
		require.Eventually(tb, func() bool { return c.CacheStats().Current }, natstest.Patience, 5*time.Millisecond)
		return c
	})
}
