// Package natstest holds the embedded nats-server helpers of the tests:
// single servers, clusters, and the waiting bounds tests share. Only tests
// and integration/ import it.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
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
	require.True(tb, s.ReadyForConnections(Patience), "nats not ready")
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

// Patience bounds how long a test waits for a state it needs (a consumer
// ready, an event delivered, a connection closed). It is generous on
// purpose: a wait ends as soon as the state holds, so the bound only
// matters on a machine so loaded that the run would otherwise fail for
// being slow rather than wrong. Speed is measured by benchmarks, never by
// these bounds.
const Patience = 2 * time.Minute

// Context returns a context for a test's calls that ends with the test
// binary's deadline (go test -timeout) rather than at a fixed time, and is
// cancelled when the test ends.
func Context(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
	}
	tb.Cleanup(cancel)
	return ctx
}

// RunCluster starts n embedded JetStream servers clustered over loopback
// routes in this process, and returns once the cluster can place replicated
// assets: a meta leader exists, it sees all n peers online with JetStream,
// and every server's meta state is current.
func RunCluster(tb testing.TB, n int) []*server.Server {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		ports[i] = l.Addr().(*net.TCPAddr).Port
		require.NoError(tb, l.Close())
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		opts := Options(tb)
		opts.ServerName = fmt.Sprintf("node-%d", i)
		opts.Cluster = server.ClusterOpts{Name: "session-bus-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		s, err := server.NewServer(opts)
		require.NoError(tb, err)
		go s.Start()
		servers[i] = s
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	for _, s := range servers {
		require.True(tb, s.ReadyForConnections(Patience), "server not ready")
	}
	require.Eventually(tb, func() bool { return ClusterReady(servers) }, Patience, 50*time.Millisecond,
		"JetStream cluster did not form: no meta leader seeing every peer")
	return servers
}

// ClusterReady reports whether the running servers of a JetStream cluster
// have a meta leader that sees each of them online, and all are current.
func ClusterReady(servers []*server.Server) bool {
	running := 0
	leaderSeesAll := false
	for _, s := range servers {
		if !s.Running() {
			continue
		}
		running++
		if !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsLeader() {
			leaderSeesAll = len(s.JetStreamClusterPeers()) >= countRunning(servers)
		}
	}
	return running > 0 && leaderSeesAll
}

func countRunning(servers []*server.Server) int {
	n := 0
	for _, s := range servers {
		if s.Running() {
			n++
		}
	}
	return n
}
