package app

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/natstest"
)

// TestApp_SlowConsumerIsCutOff: a client that subscribes and then never
// reads is cut off once the embedded server holds MaxPendingBytes for it,
// so the server's memory for clients has a bound.
func TestApp_SlowConsumerIsCutOff(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Auth = AuthNone
	cfg.Listen, cfg.DataDir = "127.0.0.1:-1", t.TempDir()
	cfg.MaxPendingBytes = 1 << 20
	a, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })

	// A raw client: subscribe, confirm, then stop reading.
	addr := strings.TrimPrefix(a.ClientURL(), "nats://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = conn.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "PONG") {
			break
		}
	}

	pub, err := nats.Connect(a.ClientURL(), nats.Timeout(natstest.Patience))
	require.NoError(t, err)
	defer pub.Close()
	// Published bytes until the cut: the 1 MiB bound plus what the
	// kernel's socket buffers take, far below the server's own default of
	// 64 MiB.
	chunk := make([]byte, 256<<10)
	sent := 0
	deadline := time.Now().Add(natstest.Patience)
	for a.ns.NumSlowConsumersClients() == 0 {
		require.True(t, time.Now().Before(deadline), "the non-reading client was never cut off")
		require.Less(t, sent, 32<<20, "the server buffered far more than MaxPendingBytes")
		require.NoError(t, pub.Publish("big", chunk))
		require.NoError(t, pub.Flush())
		sent += len(chunk)
	}
	t.Logf("cut off after %d MiB published", sent>>20)
}
