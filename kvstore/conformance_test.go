package kvstore_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

// newStore returns a Store on its own embedded server.
func newStore(tb testing.TB) *kvstore.Store {
	tb.Helper()
	return newStoreWith(tb, kvstore.DefaultConfig())
}

// newStoreWith returns a Store with cfg on its own embedded server.
func newStoreWith(tb testing.TB, cfg kvstore.Config) *kvstore.Store {
	tb.Helper()
	js := natstest.JetStream(tb, natstest.RunServer(tb))
	st, err := kvstore.New(context.Background(), js, cfg)
	require.NoError(tb, err)
	tb.Cleanup(st.Close)
	return st
}

// memoryConfig is a config whose bucket is in memory: creates are atomic
// batches there.
func memoryConfig() kvstore.Config {
	cfg := kvstore.DefaultConfig()
	cfg.Storage = jetstream.MemoryStorage
	return cfg
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) bus.Store { return newStore(tb) })
}

// TestStore_ConformanceAtomicCreate: the contract holds where creates are
// one atomic batch.
func TestStore_ConformanceAtomicCreate(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) bus.Store { return newStoreWith(tb, memoryConfig()) })
}
