package app

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startWithConsumers starts an app whose events stream has n durable
// consumers: each one adds to the embedded server's shutdown work.
func startWithConsumers(t *testing.T, cfg Config, n int) *App {
	t.Helper()
	var logs syncBuffer
	cfg.Listen, cfg.DataDir = "127.0.0.1:-1", t.TempDir()
	a, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = a.Close()
		a.ns.WaitForShutdown() // a test that timed out the shutdown still waits for it
	})
	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	for i := range n {
		_, err := js.CreateConsumer(context.Background(), cfg.Events.Name,
			jetstream.ConsumerConfig{Durable: fmt.Sprintf("listener-%d", i), AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
	}
	return a
}

// TestApp_CloseShutsTheServerDownCleanly: with many consumers the embedded
// server's shutdown is slow; it gets its own deadline, so it completes
// instead of being cut off by the bus's.
func TestApp_CloseShutsTheServerDownCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("200 consumers to shut down")
	}
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ShutdownTimeout = 200 * time.Millisecond // less than the server needs: it is not the server's budget
	cfg.ServerShutdownTimeout = 5 * time.Minute
	a := startWithConsumers(t, cfg, 200)
	require.NoError(t, a.Close())
	assert.False(t, a.ns.Running(), "the embedded server is down when Close returns")
	require.NoError(t, a.Close(), "a second Close returns the same")
}

// TestApp_CloseTimeoutIsReportedOnce: a server shutdown that overruns its
// deadline makes Close return ErrShutdownTimeout, without a data race
// between the stop and the deadline (run with -race), the same on every call.
func TestApp_CloseTimeoutIsReportedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("200 consumers to shut down")
	}
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ServerShutdownTimeout = time.Millisecond // far less than 200 consumers take
	a := startWithConsumers(t, cfg, 200)
	err := a.Close()
	require.ErrorIs(t, err, ErrShutdownTimeout)
	assert.Contains(t, err.Error(), "embedded server")
	assert.Equal(t, err, a.Close())
}
