package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
)

// A bus in callout mode: the embedded server hands service logins to the
// bus, and a service's permissions become subject permissions.
func ExampleServerOptions() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "session-bus-example")
	defer os.RemoveAll(dir)

	keys, err := auth.Bootstrap(dir) // keys.Created: print keys.AdminPath once
	if err != nil {
		panic(err)
	}
	opts, err := auth.ServerOptions(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}, keys)
	if err != nil {
		panic(err)
	}
	ns, _ := server.NewServer(opts)
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	ns.ReadyForConnections(5 * time.Second)

	// The bus: its own (exempt) connection, the manager, the service.
	nc, _ := nats.Connect(ns.ClientURL(), keys.BusConnectOptions()...)
	defer nc.Close()
	sys, _ := nats.Connect(ns.ClientURL(), keys.SysConnectOptions()...)
	defer sys.Close()
	js, _ := jetstream.New(nc)
	store, _ := kvstore.New(ctx, js, kvstore.DefaultConfig())
	m, _ := bus.New(store, "session-bus", 30*time.Minute)
	svc, _ := natsapi.New(nc, m)
	defer func() { _ = svc.Close() }()
	callout, err := auth.New(nc, m, keys.Config(), auth.WithSystemConn(sys))
	if err != nil {
		panic(err)
	}
	defer func() { _ = callout.Close() }()
	_ = auth.EnsureAdmin(ctx, m, keys)

	// A service logs in with its own credentials.
	secret, _ := m.RegisterService(ctx, bus.ServiceCredential{ServiceID: "shop", Permissions: []string{auth.PermSessionWrite}}, "")
	snc, _ := nats.Connect(ns.ClientURL(), client.ConnectOptions("shop", secret)...)
	defer snc.Close()
	c, _ := client.New(snc, client.WithServiceID("shop"))
	s, err := c.CreateSession(ctx, "alice", "token-of-alice-0123456789")
	fmt.Println(s.ServiceID, err)
	_, err = c.ListServices(ctx)
	fmt.Println(errors.Is(err, bus.ErrPermissionDenied))
	// Output:
	// shop <nil>
	// true
}
