package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Options returns the options RunServer uses: loopback, random port,
// JetStream in a temp dir, no logging, no signal handlers.
func Options(tb testing.TB) *server.Options {
	tb.Helper()
	return &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  tb.TempDir(),
	}
}

// RunServer starts an embedded nats-server with JetStream and stops it when
// the test ends.
func RunServer(tb testing.TB) *server.Server {
	tb.Helper()
	return RunServerWithOptions(tb, Options(tb))
}

// RunServerWithOptions starts an embedded nats-server with opts.
func RunServerWithOptions(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	s, err := server.NewServer(opts)
	require.NoError(tb, err)
	go s.Start()
	require.True(tb, s.ReadyForConnections(10*time.Second), "nats not ready")
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Connect returns a connection to s, closed when the test ends.
func Connect(tb testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection to s.
func JetStream(tb testing.TB, s *server.Server) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(Connect(tb, s))
	require.NoError(tb, err)
	return js
}
