// Quickstart mirrors the quick start of sa-token's distributed session
// module: a manager on a JetStream KV bucket (here on an embedded NATS
// server in a temp dir), a registered and verified service, a session with
// attributes, and the sessions of a login.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/kvstore"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "quickstart")
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

	// Create distributed session manager
	storage, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	if err != nil {
		return err
	}
	manager, err := bus.New(storage, "service-main", time.Hour) // 1 hour idle timeout
	if err != nil {
		return err
	}

	// Register a service; with no secret given, a strong one is generated
	secret, err := manager.RegisterService(ctx, bus.ServiceCredential{
		ServiceID:   "api-gateway",
		ServiceName: "API Gateway",
		Permissions: []string{"session.read", "session.write"},
	}, "")
	if err != nil {
		return err
	}

	// Verify service
	verified, err := manager.VerifyService(ctx, "api-gateway", secret)
	if err != nil {
		return err
	}
	fmt.Println("Service verified:", verified.ServiceName)

	// Create session
	session, err := manager.CreateSession(ctx, "user123", "token456")
	if err != nil {
		return err
	}

	// Set session attribute
	if err := manager.SetAttribute(ctx, session.SessionID, "role", "admin"); err != nil {
		return err
	}

	// Get session attribute
	if role, ok, err := manager.GetAttribute(ctx, session.SessionID, "role"); err != nil {
		return err
	} else if ok {
		fmt.Println("User role:", role)
	}

	// Get all sessions for user
	sessions, err := manager.SessionsByLogin(ctx, "user123")
	if err != nil {
		return err
	}
	fmt.Printf("User has %d active sessions\n", len(sessions))
	return nil
}
