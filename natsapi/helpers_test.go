package natsapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/natsapi"
)

var quiet = slog.New(slog.DiscardHandler)

// runServer starts a bus server on its own connection to srv and closes
// it when the test ends.
func runServer(tb testing.TB, srv *server.Server, m *bus.Manager, opts ...natsapi.Option) *natsapi.Server {
	tb.Helper()
	svc, err := natsapi.New(natstest.Connect(tb, srv), m, append([]natsapi.Option{natsapi.WithLogger(quiet)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, svc.Close()) })
	return svc
}

func newManager(tb testing.TB, st bus.Store) *bus.Manager {
	tb.Helper()
	m, err := bus.New(st, "bus", time.Hour, bus.WithLogger(quiet))
	require.NoError(tb, err)
	return m
}

// request sends a raw request and returns the reply.
func request(tb testing.TB, nc *nats.Conn, subject string, body []byte) *nats.Msg {
	tb.Helper()
	msg, err := nc.Request(subject, body, 5*time.Second)
	require.NoError(tb, err, "request to %s", subject)
	return msg
}

// wantOK checks a success reply and decodes its body into a map.
func wantOK(tb testing.TB, msg *nats.Msg) map[string]any {
	tb.Helper()
	require.Empty(tb, msg.Header.Get(micro.ErrorCodeHeader), "error reply: %s", msg.Data)
	require.Empty(tb, msg.Header.Get(micro.ErrorHeader))
	var body map[string]any
	require.NoError(tb, json.Unmarshal(msg.Data, &body), "body %s", msg.Data)
	return body
}

// wantErr checks an error reply's headers and body.
func wantErr(tb testing.TB, msg *nats.Msg, status, code string) {
	tb.Helper()
	require.Equal(tb, status, msg.Header.Get(micro.ErrorCodeHeader), "body %s", msg.Data)
	require.NotEmpty(tb, msg.Header.Get(micro.ErrorHeader))
	var body bus.ErrorReply
	require.NoError(tb, json.Unmarshal(msg.Data, &body), "body %s", msg.Data)
	require.Equal(tb, code, body.Error.Code)
	require.Equal(tb, msg.Header.Get(micro.ErrorHeader), body.Error.Message)
	for _, prefix := range []string{"bus: ", "kvstore: ", "events: ", "json: "} {
		require.NotContains(tb, body.Error.Message, prefix, "a package prefix on the wire")
	}
}

func subj(m bus.Method, caller string) string {
	s, err := bus.MethodSubject(m, caller)
	if err != nil {
		panic(err)
	}
	return s
}

// gateStore holds GetSession calls while armed, until released.
type gateStore struct {
	bus.Store
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
}

func newGateStore() *gateStore {
	return &gateStore{Store: bus.NewMemoryStore(), entered: make(chan struct{}, 1024), gate: make(chan struct{})}
}

func (g *gateStore) GetSession(ctx context.Context, id string) (*bus.Session, error) {
	if g.armed.Load() {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.GetSession(ctx, id)
}

// waitEntered waits until n held calls have entered the store.
func (g *gateStore) waitEntered(tb testing.TB, n int) {
	tb.Helper()
	for range n {
		select {
		case <-g.entered:
		case <-time.After(natstest.Patience):
			tb.Fatal("calls did not reach the store")
		}
	}
}
