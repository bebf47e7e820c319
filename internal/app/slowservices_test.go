package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestApp_NonReadingServicesAreCutOff: 20 connections of a service (in
// accounts mode, logged in with its .creds) send requests with large
// replies and never read them. The embedded server cuts each off once it
// holds MaxPendingBytes for it, so what the bus process holds for them is
// bounded by connections x MaxPendingBytes (the heap growth is printed).
func TestApp_NonReadingServicesAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("20 flooding connections")
	}
	cfg := accountsConfig(t.TempDir())
	cfg.MaxPendingBytes = 1 << 20
	ctx := context.Background()
	a, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	creds, err := a.Manager().RegisterService(ctx, bus.ServiceCredential{ServiceID: "flood",
		Permissions: []string{auth.PermSessionRead}}, "")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "flood.creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	// A session whose every read answers ~200 KiB.
	big, err := a.Manager().CreateSession(ctx, "big", "tok-big")
	require.NoError(t, err)
	value := strings.Repeat("v", 1000)
	for i := range 200 {
		require.NoError(t, a.Manager().SetAttribute(ctx, big.SessionID, fmt.Sprintf("k%03d", i), value))
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const conns = 20
	for range conns {
		floodWithoutReading(t, strings.TrimPrefix(a.ClientURL(), "nats://"), []byte(creds), big.SessionID)
	}
	// Waits while the server is still delivering replies to the flooding
	// connections (progress, not a time: a loaded machine is slow, not
	// wrong); fails when every one is not cut off and delivery stalled.
	var sent int64
	stalledSince := time.Now()
	for a.ns.NumSlowConsumersClients() < conns {
		if now := sentToFlood(t, a); now > sent {
			sent, stalledSince = now, time.Now()
		}
		require.Less(t, time.Since(stalledSince), natstest.Patience,
			"no reply reached the flooding connections for a while, and only %d of %d were cut off", a.ns.NumSlowConsumersClients(), conns)
		time.Sleep(50 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The stated bound: what the server may buffer for the clients
	// (connections x max pending), plus the replies the bus is building
	// (max in flight x the largest session, twice for the encoding), plus
	// slack. With the server's own default of 64 MiB pending per client
	// the same flood holds over a GiB.
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	bound := int64(conns)*cfg.MaxPendingBytes + 2*int64(cfg.MaxInFlight)*bus.DefaultMaxSessionBytes + 32<<20
	require.Less(t, growth, bound, "the process holds more than its bound for clients that do not read")
	t.Logf("%d non-reading connections cut off; heap in use %d MiB -> %d MiB (bound: +%d MiB)",
		conns, before.HeapInuse>>20, after.HeapInuse>>20, bound>>20)
}

// floodWithoutReading logs in over a raw socket with the user of creds,
// then, in the background, sends reads of a large session whose replies
// it never reads, until the server or the test's end closes the
// connection.
func floodWithoutReading(t *testing.T, addr string, creds []byte, sessionID string) {
	t.Helper()
	token, err := jwt.ParseDecoratedJWT(creds)
	require.NoError(t, err)
	kp, err := jwt.ParseDecoratedNKey(creds)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096)) // little kernel buffering
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	var info struct {
		Nonce string `json:"nonce"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "INFO ")), &info))
	sig, err := kp.Sign([]byte(info.Nonce))
	require.NoError(t, err)
	connect, err := json.Marshal(map[string]any{"jwt": token, "sig": base64.RawURLEncoding.EncodeToString(sig),
		"verbose": false, "pedantic": false, "protocol": 1, "headers": true})
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "CONNECT %s\r\nSUB _INBOX.flood.* 1\r\nPING\r\n", connect)
	require.NoError(t, err)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "login")
		if strings.HasPrefix(line, "PONG") {
			break
		}
		require.False(t, strings.HasPrefix(line, "-ERR"), line)
	}
	body := `{"session_id":"` + sessionID + `"}`
	req := []byte(fmt.Sprintf("PUB sessionbus.read.get.flood _INBOX.flood.x %d\r\n%s\r\n", len(body), body))
	// Send until cut off, paced so that the bus answers (rather than
	// refusing a burst past its in-flight bound with small 503s).
	go func() {
		for {
			for range 2 {
				if _, err := conn.Write(req); err != nil {
					return // cut off, or the test ended and closed it
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// sentToFlood is what the server has sent so far to connections still
// open (cut-off ones drop out; their count is what the caller waits for).
func sentToFlood(t *testing.T, a *App) int64 {
	t.Helper()
	cz, err := a.ns.Connz(&server.ConnzOptions{State: server.ConnAll})
	require.NoError(t, err)
	var n int64
	for _, c := range cz.Conns {
		n += c.OutBytes
	}
	return n
}
