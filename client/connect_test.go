package client_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/client"
)

// applyOptions returns the nats.Options that opts set.
func applyOptions(tb testing.TB, opts []nats.Option) nats.Options {
	tb.Helper()
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		require.NoError(tb, opt(&o))
	}
	return o
}

func TestInboxPrefix(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "_INBOX_order-api", client.InboxPrefix("order-api"))
}

func TestConnectOptions(t *testing.T) {
	t.Parallel()
	o := applyOptions(t, client.ConnectOptions("order-api", "s3cret"))
	assert.Equal(t, "order-api", o.User)
	assert.Equal(t, "s3cret", o.Password)
	assert.Equal(t, "_INBOX_order-api", o.InboxPrefix)
}
