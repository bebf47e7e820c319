package integration_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
	"github.com/session-bus/session-bus/sessioncache"
)

var quiet = slog.New(slog.DiscardHandler)

// busEnv is an embedded server with a kvstore, bus instances serving it,
// and a client on its own connection.
type busEnv struct {
	srv    *server.Server
	store  *kvstore.Store
	client *client.Client
}

// newBusEnv starts a server, a kvstore, n bus instances (each with its own
// Manager and connection) with sessions idle for idle, and a client.
func newBusEnv(tb testing.TB, n int, idle time.Duration, opts ...natsapi.Option) *busEnv {
	tb.Helper()
	srv := natstest.RunServer(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := kvstore.New(ctx, natstest.JetStream(tb, srv), kvstore.DefaultConfig())
	require.NoError(tb, err)
	for i := range n {
		// Each instance on connections of its own, as separate processes are.
		ist := st
		if i > 0 {
			ist, err = kvstore.New(ctx, natstest.JetStream(tb, srv), kvstore.DefaultConfig())
			require.NoError(tb, err)
		}
		// As serve wires it: change notices, and the bus's own cache.
		nc := natstest.Connect(tb, srv)
		cacheOpts, _, stopCache, err := sessioncache.ForBus(nc, sessioncache.DefaultMaxEntries, quiet)
		require.NoError(tb, err)
		m, err := bus.New(ist, fmt.Sprintf("bus-%d", i), idle, append(cacheOpts, bus.WithLogger(quiet))...)
		require.NoError(tb, err)
		svc, err := natsapi.New(nc, m, append([]natsapi.Option{natsapi.WithLogger(quiet)}, opts...)...)
		require.NoError(tb, err)
		tb.Cleanup(func() {
			require.NoError(tb, svc.Close())
			stopCache()
		})
	}
	c, err := client.New(natstest.Connect(tb, srv), client.WithServiceID("it-client"))
	require.NoError(tb, err)
	return &busEnv{srv: srv, store: st, client: c}
}
