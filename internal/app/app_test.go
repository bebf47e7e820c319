package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startTestApp(t *testing.T, logs *syncBuffer) (*App, *nats.Conn) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", t.TempDir(), AuthCallout // the tests below check secrets
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := Start(context.Background(), cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	keys, err := auth.Bootstrap(cfg.DataDir)
	require.NoError(t, err)
	nc, err := nats.Connect(a.ClientURL(), keys.BusConnectOptions()...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return a, nc
}

// TestApp_ServiceAuditRecords: registration, a failed verification,
// rotation and removal each leave a record on the audit stream.
func TestApp_ServiceAuditRecords(t *testing.T) {
	var logs syncBuffer
	a, nc := startTestApp(t, &logs)
	ctx := bus.ContextWithService(context.Background(), "admin")
	m := a.Manager()
	_, err := m.RegisterService(ctx, bus.ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", "not-the-secret-at-all")
	require.ErrorIs(t, err, bus.ErrUnauthenticated)
	_, err = m.RotateService(ctx, "pay", "", 0)
	require.NoError(t, err)
	require.NoError(t, m.RemoveService(ctx, "pay"))

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.OrderedConsumer(context.Background(), "SESSION_AUDIT", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"sessionaudit.service.*.pay"}})
	require.NoError(t, err)
	batch, err := cons.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var types []string
	for msg := range batch.Messages() {
		var rec events.ServiceRecord
		require.NoError(t, json.Unmarshal(msg.Data(), &rec))
		types = append(types, rec.Type)
		assert.Equal(t, "admin", rec.Actor)
	}
	assert.Equal(t, []string{bus.ServiceRegistered, bus.ServiceVerifyFailed, bus.ServiceRotated, bus.ServiceRemoved}, types)
}

// TestApp_NoSecretsAtRest: after a run with services and sessions, no
// bucket key or value and no log line holds a service secret or a user
// token in clear.
func TestApp_NoSecretsAtRest(t *testing.T) {
	var logs syncBuffer
	a, nc := startTestApp(t, &logs)
	ctx := bus.ContextWithService(context.Background(), "admin")
	m := a.Manager()
	secret, err := m.RegisterService(ctx, bus.ServiceCredential{ServiceID: "pay"}, "")
	require.NoError(t, err)
	const token = "user-token-4d3c2b1a-never-stored"
	s, err := m.CreateSession(ctx, "u1", token)
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "role", "admin"))
	_, err = m.GetSessionByToken(ctx, token)
	require.NoError(t, err)
	_, err = m.VerifyService(ctx, "pay", secret)
	require.NoError(t, err)

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var seen int
	for name := range js.KeyValueStoreNames(context.Background()).Name() {
		kv, err := js.KeyValue(context.Background(), name)
		require.NoError(t, err)
		keys, err := kv.ListKeys(context.Background())
		require.NoError(t, err)
		for key := range keys.Keys() {
			e, err := kv.Get(context.Background(), key)
			if err != nil {
				continue
			}
			seen++
			for _, secretText := range []string{secret, token} {
				assert.NotContains(t, key, secretText, "bucket %s", name)
				assert.NotContains(t, string(e.Value()), secretText, "bucket %s key %s", name, key)
			}
		}
	}
	assert.Greater(t, seen, 4, "the test read the buckets")
	out := logs.String()
	assert.NotEmpty(t, out)
	assert.NotContains(t, out, secret)
	assert.NotContains(t, out, token)
}
