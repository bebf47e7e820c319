package auth_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestCallout_LoginBurst: 500 connections of one service opened at the
// same instant all log in. After the first, a login is checked against the
// remembered success (an HMAC), not a password hash.
func TestCallout_LoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("500 connections")
	}
	// Not parallel: the burst takes both cores for seconds, and would
	// starve the package's other tests. The server's auth timeout (5 s
	// by default) is raised: this checks that no login of the burst is
	// refused, not how fast a loaded machine gets through it (printed).
	e := newEnv(t, envConfig{server: func(o *server.Options) { o.AuthTimeout = natstest.Patience.Seconds() }})
	secret := e.register(t, "svc-burst", auth.PermSessionRead)
	first, err := e.connect(t, "svc-burst", secret)
	require.NoError(t, err)
	first.Close()

	const n = 500
	start := make(chan struct{})
	errs := make([]error, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			nc, err := nats.Connect(e.url, append(client.ConnectOptions("svc-burst", secret),
				nats.NoReconnect(), nats.Timeout(natstest.Patience))...)
			took[i], errs[i] = time.Since(t0), err
			if err == nil {
				nc.Close()
			}
		})
	}
	close(start)
	wg.Wait()
	failed := 0
	var slowest time.Duration
	for i := range n {
		if errs[i] != nil {
			failed++
			t.Logf("login %d: %v", i, errs[i])
		}
		slowest = max(slowest, took[i])
	}
	assert.Zero(t, failed, "every login of the burst succeeds")
	t.Logf("%d logins at once: slowest %v", n, slowest.Round(time.Millisecond))
}
