package app

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// The bus joins a NATS deployment whose operator it does not run: given a
// signing key of that operator and the seed of its system account in
// operator.json, it pushes its own account, and its services get accounts
// signed with that signing key, which the server trusts.
func TestApp_JoinsAnExistingOperator(t *testing.T) {
	key := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string, string) {
		kp, err := create()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		seed, err := kp.Seed()
		require.NoError(t, err)
		return kp, pub, string(seed)
	}
	// The deployment: an operator with a signing key, and its system
	// account, as nsc would make them.
	op, opPub, _ := key(nkeys.CreateOperator)
	_, signPub, signSeed := key(nkeys.CreateOperator)
	_, sysPub, sysSeed := key(nkeys.CreateAccount)
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	oc.SigningKeys.Add(signPub)
	opJWT, err := oc.Encode(op)
	require.NoError(t, err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(op)
	require.NoError(t, err)
	res, err := server.NewDirAccResolver(t.TempDir(), 0, time.Minute, server.NoDelete)
	require.NoError(t, err)
	require.NoError(t, res.Store(sysPub, sysJWT))
	opts := natstest.Options(t)
	opts.TrustedOperators, opts.SystemAccount, opts.AccountResolver = []*jwt.OperatorClaims{opClaims}, sysPub, res
	srv := natstest.RunServerWithOptions(t, opts)

	// operator.json written by the operator of that deployment.
	dataDir := t.TempDir()
	_, _, busSeed := key(nkeys.CreateAccount)
	_, _, svcSignSeed := key(nkeys.CreateAccount)
	file, err := json.Marshal(map[string]string{"operator_seed": signSeed, "system_account_seed": sysSeed,
		"bus_account_seed": busSeed, "service_signing_seed": svcSignSeed})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "auth"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "auth", "operator.json"), file, 0o600))

	cfg := DefaultConfig()
	cfg.NATSURL, cfg.DataDir = srv.ClientURL(), dataDir
	ctx := natstest.Context(t)
	a, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })

	admin := connectCreds(t, a, a.AdminCredsPath(), auth.AdminServiceID)
	creds, err := admin.RegisterService(ctx, bus.ServiceCredential{ServiceID: "svc",
		Permissions: []string{auth.PermSessionRead, auth.PermSessionWrite}}, "")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "svc.creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(path))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c, err := client.New(nc, client.WithServiceID("svc"))
	require.NoError(t, err)
	s, err := c.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	got, err := c.GetSessionByToken(ctx, "tok-1")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, got.SessionID)
}
