package kvstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
)

// newStore returns a Store on its own embedded server.
func newStore(tb testing.TB) *kvstore.Store {
	tb.Helper()
	js := natstest.JetStream(tb, natstest.RunServer(tb))
	st, err := kvstore.New(context.Background(), js, kvstore.DefaultConfig())
	require.NoError(tb, err)
	tb.Cleanup(st.Close)
	return st
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) bus.Store { return newStore(tb) })
}
