package auth_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestAccounts_LoginBurst: 500 connections of one service opened at the
// same instant all log in (the server checks a JWT signature each; there
// is no callout and no password hash).
func TestAccounts_LoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("500 connections")
	}
	// Not parallel: the burst takes both cores for a moment. The auth
	// timeout is raised: this checks that no login of the burst is
	// refused, not how fast a loaded machine gets through it (printed).
	e := startOperatorBus(t, func(o *server.Options) { o.AuthTimeout = natstest.Patience.Seconds() })
	creds := e.register(t, "svc-burst", auth.PermSessionRead)
	const n = 500
	start := make(chan struct{})
	errs := make([]error, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			nc, err := nats.Connect(e.srvURL, nats.UserCredentials(creds), nats.NoReconnect(), nats.Timeout(natstest.Patience))
			took[i], errs[i] = time.Since(t0), err
			if err == nil {
				nc.Close()
			}
		})
	}
	close(start)
	wg.Wait()
	failed := 0
	for i := range n {
		if errs[i] != nil {
			failed++
			t.Logf("login %d: %v", i, errs[i])
		}
	}
	assert.Zero(t, failed, "every login of the burst succeeds")
	slices.Sort(took)
	t.Logf("%d logins at once: p50 %v, slowest %v", n, took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
}

// TestAccounts_LoginStorm: a flood of bad logins from the same host (user
// JWTs signed by a key the server does not trust, and garbage) beside 20
// legitimate logins: none of the legitimate ones fails; their latency is
// printed.
func TestAccounts_LoginStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a login flood")
	}
	e := startOperatorBus(t)
	creds := e.register(t, "svc-ok", auth.PermSessionRead)

	// A well-formed .creds file of an account this operator never signed.
	rogueAcc, err := nkeys.CreateAccount()
	require.NoError(t, err)
	ukp, err := nkeys.CreateUser()
	require.NoError(t, err)
	upub, err := ukp.PublicKey()
	require.NoError(t, err)
	token, err := jwt.NewUserClaims(upub).Encode(rogueAcc)
	require.NoError(t, err)
	seed, err := ukp.Seed()
	require.NoError(t, err)
	rogue, err := jwt.FormatUserConfig(token, seed)
	require.NoError(t, err)
	roguePath := filepath.Join(t.TempDir(), "rogue.creds")
	require.NoError(t, os.WriteFile(roguePath, rogue, 0o600))

	stop := make(chan struct{})
	var bad, badOK atomic.Int64
	var flood sync.WaitGroup
	for w := range 4 {
		flood.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				opt := nats.UserCredentials(roguePath)
				if w%2 == 1 {
					opt = nats.UserInfo("svc-ok", "not-a-jwt-login")
				}
				nc, err := nats.Connect(e.srvURL, opt, nats.NoReconnect(), nats.Timeout(5*time.Second))
				bad.Add(1)
				if err == nil {
					badOK.Add(1)
					nc.Close()
				}
			}
		})
	}
	// Let the flood get going before measuring.
	require.Eventually(t, func() bool { return bad.Load() > 100 }, natstest.Patience, 10*time.Millisecond)
	const n = 20
	took := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		nc, err := nats.Connect(e.srvURL, nats.UserCredentials(creds), nats.NoReconnect(), nats.Timeout(natstest.Patience))
		took[i] = time.Since(t0)
		require.NoError(t, err, "legitimate login %d during the storm", i)
		nc.Close()
	}
	close(stop)
	flood.Wait()
	assert.Zero(t, badOK.Load(), "no bad login succeeds")
	slices.Sort(took)
	t.Logf("%d bad logins beside %d good ones: good login p50 %v, max %v", bad.Load(), n,
		took[n/2].Round(time.Microsecond), took[n-1].Round(time.Microsecond))
}
