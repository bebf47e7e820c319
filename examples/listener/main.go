// Listener shows the event side of the bus: a relay announcing the changes
// of a KV session store, and a durable group listener reacting to them, the
// way a cache or an audit service would. It runs on an embedded NATS
// server in a temp dir and stops by itself.
//
//	go run ./examples/listener
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/kvstore"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "listener")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		return fmt.Errorf("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)

	// The bus side: a store, a manager, and the relay that announces changes.
	store, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	if err != nil {
		return err
	}
	manager, err := bus.New(store, "login-service", time.Hour, bus.WithLogger(quiet))
	if err != nil {
		return err
	}
	rcfg := events.DefaultRelayConfig()
	rcfg.Logger = quiet
	relay, err := events.NewRelay(store, js, rcfg)
	if err != nil {
		return err
	}
	if err := relay.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = relay.Close() }()

	// The listener side: each event handled by one instance of the group.
	const want = 5 // 2 created, 1 updated, 2 deleted
	done := make(chan struct{})
	var seen atomic.Int32
	l, err := events.Listen(ctx, js, "example-cache", func(_ context.Context, ev events.Event) error {
		fmt.Printf("%-17s login=%s by=%s reason=%s keys=%v\n", ev.Type, ev.LoginID, ev.ServiceID, ev.Reason, ev.Keys)
		if seen.Add(1) == want {
			close(done)
		}
		return nil // an error would have the event redelivered
	}, events.WithDeliverAll(), events.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()

	s, err := manager.CreateSession(ctx, "user123", "token456")
	if err != nil {
		return err
	}
	if err := manager.SetAttribute(bus.ContextWithService(ctx, "order-service"), s.SessionID, "cart", "3 items"); err != nil {
		return err
	}
	if _, err := manager.CreateSession(ctx, "user123", "token789"); err != nil {
		return err
	}
	if _, err := manager.DeleteAllSessions(ctx, "user123"); err != nil { // log out everywhere
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("only %d of %d events arrived", seen.Load(), want)
	}
}
