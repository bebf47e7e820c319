package auth_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a running bus in callout mode: an embedded server configured by
// auth.ServerOptions, the bus on its exempt connection, and the callout.
type env struct {
	url     string
	keys    *auth.Keys
	nc      *nats.Conn // the bus's own connection
	sys     *nats.Conn
	js      jetstream.JetStream
	m       *bus.Manager
	callout *auth.Callout
	logs    *syncBuffer
}

type envConfig struct {
	ttl     time.Duration
	noSys   bool // no system connection: no revoke
	watch   bool // revoke on removal from the services bucket
	server  func(*server.Options)
	callout func(*auth.Config)
}

func newEnv(tb testing.TB, ec envConfig) *env {
	tb.Helper()
	keys, err := auth.Bootstrap(tb.TempDir())
	require.NoError(tb, err)
	opts, err := auth.ServerOptions(natstest.Options(tb), keys)
	require.NoError(tb, err)
	if ec.server != nil {
		ec.server(opts)
	}
	s := natstest.RunServerWithOptions(tb, opts)
	return startBus(tb, s.ClientURL(), keys, ec)
}

// startBus runs the bus and its callout on the NATS at url, set up for
// callout mode with keys.
func startBus(tb testing.TB, url string, keys *auth.Keys, ec envConfig) *env {
	tb.Helper()
	ctx := context.Background()
	e := &env{url: url, keys: keys, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var err error
	e.nc, err = nats.Connect(url, keys.BusConnectOptions()...)
	require.NoError(tb, err)
	tb.Cleanup(e.nc.Close)
	e.js, err = jetstream.New(e.nc)
	require.NoError(tb, err)
	scfg := kvstore.DefaultConfig()
	scfg.Storage = jetstream.MemoryStorage
	store, err := kvstore.New(ctx, e.js, scfg)
	require.NoError(tb, err)
	e.m, err = bus.New(store, "session-bus", time.Minute, bus.WithLogger(log))
	require.NoError(tb, err)
	svc, err := natsapi.New(e.nc, e.m, natsapi.WithLogger(log))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = svc.Close() })

	cfg := keys.Config()
	if ec.ttl > 0 {
		cfg.TokenTTL = ec.ttl
	}
	if ec.callout != nil {
		ec.callout(&cfg)
	}
	copts := []auth.Option{auth.WithLogger(log)}
	if !ec.noSys {
		e.sys, err = nats.Connect(url, keys.SysConnectOptions()...)
		require.NoError(tb, err)
		tb.Cleanup(e.sys.Close)
		copts = append(copts, auth.WithSystemConn(e.sys))
	}
	e.callout, err = auth.New(e.nc, e.m, cfg, copts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, e.callout.Close()) })
	if ec.watch {
		kv, err := e.js.KeyValue(ctx, scfg.ServicesBucket)
		require.NoError(tb, err)
		require.NoError(tb, e.callout.WatchRemovals(ctx, kv))
	}

	// The events stream, as the events relay creates it.
	_, err = e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: auth.DefaultEventsStream, Subjects: []string{"session.>"}, Storage: jetstream.MemoryStorage,
	})
	require.NoError(tb, err)
	return e
}

// register registers a service and returns its generated secret.
func (e *env) register(tb testing.TB, id string, perms ...string) string {
	tb.Helper()
	secret, err := e.m.RegisterService(context.Background(), bus.ServiceCredential{ServiceID: id, Permissions: perms}, "")
	require.NoError(tb, err)
	return secret
}

// callTimeout bounds one client call in these tests: long, so that a
// loaded machine is slow, not wrong.
const callTimeout = 30 * time.Second

// svcConn is a service's connection with the permission violations the
// server reported on it.
type svcConn struct {
	*nats.Conn
	violations chan string
}

// connect logs in as a service.
func (e *env) connect(tb testing.TB, id, secret string, opts ...nats.Option) (*svcConn, error) {
	tb.Helper()
	sc := &svcConn{violations: make(chan string, 64)}
	// A login runs a password hash in the callout: slow on a loaded
	// machine under -race, so the handshake gets the tests' patience.
	all := append(client.ConnectOptions(id, secret), nats.Timeout(natstest.Patience),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case sc.violations <- err.Error():
			default:
			}
		}))
	nc, err := nats.Connect(e.url, append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(nc.Close)
	sc.Conn = nc
	return sc, nil
}

// service registers id with perms and returns its connection and client.
func (e *env) service(tb testing.TB, id string, perms ...string) (*svcConn, *client.Client, string) {
	tb.Helper()
	secret := e.register(tb, id, perms...)
	sc, err := e.connect(tb, id, secret)
	require.NoError(tb, err)
	c, err := client.New(sc.Conn, client.WithServiceID(id), client.WithTimeout(callTimeout))
	require.NoError(tb, err)
	return sc, c, secret
}

// wantViolation waits for the server to report a permission violation
// that mentions subject.
func (sc *svcConn) wantViolation(tb testing.TB, subject string) {
	tb.Helper()
	deadline := time.After(natstest.Patience)
	for {
		select {
		case v := <-sc.violations:
			if bytes.Contains([]byte(v), []byte(subject)) {
				return
			}
		case <-deadline:
			tb.Fatalf("no permission violation for %q", subject)
		}
	}
}

func newClient(sc *svcConn, id string) (*client.Client, error) {
	return client.New(sc.Conn, client.WithServiceID(id), client.WithTimeout(callTimeout))
}
