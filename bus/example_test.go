package bus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/session-bus/session-bus/bus"
)

func ExampleManager_CreateSession() {
	ctx := context.Background()
	m, err := bus.New(bus.NewMemoryStore(), "login-service", 30*time.Minute)
	if err != nil {
		panic(err)
	}
	s, err := m.CreateSession(ctx, "user123", "token456")
	if err != nil {
		panic(err)
	}
	_ = m.SetAttribute(ctx, s.SessionID, "role", "admin")

	// Another service finds the session by the user's token.
	other := bus.ContextWithService(ctx, "order-service")
	got, err := m.GetSessionByToken(other, "token456")
	if err != nil {
		panic(err)
	}
	fmt.Println(got.LoginID, got.Attributes["role"], "created by", got.ServiceID)

	// Log out everywhere.
	n, _ := m.DeleteAllSessions(ctx, "user123")
	_, err = m.GetSession(ctx, s.SessionID)
	fmt.Println(n, "deleted;", errors.Is(err, bus.ErrSessionNotFound))
	// Output:
	// user123 admin created by login-service
	// 1 deleted; true
}
