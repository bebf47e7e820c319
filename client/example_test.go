package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/natsapi"
)

// A service logs in with the credentials file the bus wrote for it and
// calls the bus as itself. The embedded server here knows the service's
// password itself; a real bus checks it (auth callout) or issued the
// file (accounts mode), and CredsFileOptions reads either kind.
func ExampleCredsFileOptions() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "session-bus-example")
	defer os.RemoveAll(dir)
	secret := bus.GenerateSecret()
	ns, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "bus", Password: "bus-password"}, {Username: "pay-api", Password: secret}}})
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	ns.ReadyForConnections(5 * time.Second)

	// The bus, on its own connection.
	bnc, _ := nats.Connect(ns.ClientURL(), nats.UserInfo("bus", "bus-password"))
	defer bnc.Close()
	m, _ := bus.New(bus.NewMemoryStore(), "session-bus", 30*time.Minute, bus.WithLogger(slog.New(slog.DiscardHandler)))
	svc, _ := natsapi.New(bnc, m, natsapi.WithLogger(slog.New(slog.DiscardHandler)))
	defer func() { _ = svc.Close() }()

	// What 'service add pay-api --creds-out pay.json' writes with --auth callout.
	path := filepath.Join(dir, "pay.json")
	_ = os.WriteFile(path, []byte(`{"service_id": "pay-api", "secret": "`+secret+`"}`), 0o600)

	opts, id, err := client.CredsFileOptions(path)
	if err != nil {
		panic(err)
	}
	nc, _ := nats.Connect(ns.ClientURL(), opts...)
	defer nc.Close()
	c, _ := client.New(nc, client.WithServiceID(id))
	s, err := c.CreateSession(ctx, "alice", "token-of-alice-0123456789")
	fmt.Println(id, nc.Opts.InboxPrefix, s.ServiceID, err)
	// Output: pay-api _INBOX_pay-api pay-api <nil>
}
