package auth_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/natstest"
)

// TestAccountsProbe characterises the nats-server mechanisms the planned
// account layout of the trust-boundary issue rests on (the layout itself
// is not built yet): an operator-mode embedded server with the dir
// ("full") resolver; a bus account that exports its request subjects with
// the importer's account key at a fixed token; service accounts, created
// at run time through $SYS.REQ.CLAIMS.UPDATE, that import them. It checks
// that the bus learns the caller from a token the server asserts, that a
// reply subject a service chooses stays in the service's own account, and
// that a service cannot import with another account's key.
func TestAccountsProbe(t *testing.T) {
	t.Parallel()
	op, opPub := newKey(t, nkeys.CreateOperator)
	sysKP, sysPub := newKey(t, nkeys.CreateAccount)
	busKP, busPub := newKey(t, nkeys.CreateAccount)
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	require.NoError(t, err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	// The bus account: JetStream, and one service export whose 4th token
	// must be the importing account's public key.
	bc := jwt.NewAccountClaims(busPub)
	bc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	bc.Exports.Add(&jwt.Export{Name: "requests", Subject: "sessionbus.*.*.*", Type: jwt.Service, AccountTokenPosition: 4})
	busJWT, err := bc.Encode(op)
	require.NoError(t, err)
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(op)
	require.NoError(t, err)

	res, err := server.NewDirAccResolver(t.TempDir(), 0, time.Minute, server.NoDelete)
	require.NoError(t, err)
	require.NoError(t, res.Store(sysPub, sysJWT))
	require.NoError(t, res.Store(busPub, busJWT))
	opts := natstest.Options(t)
	opts.TrustedOperators = []*jwt.OperatorClaims{opClaims}
	opts.SystemAccount = sysPub
	opts.AccountResolver = res
	srv := natstest.RunServerWithOptions(t, opts)

	userCreds := func(accKP nkeys.KeyPair, accPub string) nats.Option {
		ukp, upub := newKey(t, nkeys.CreateUser)
		uc := jwt.NewUserClaims(upub)
		uc.IssuerAccount = ""
		ujwt, err := uc.Encode(accKP)
		require.NoError(t, err)
		seed, err := ukp.Seed()
		require.NoError(t, err)
		return nats.UserJWTAndSeed(ujwt, string(seed))
	}
	sysConn := natstest.Connect(t, srv, userCreds(sysKP, sysPub))

	// Service accounts are pushed at run time, as `service add` would.
	addService := func(name string, importAs string) (nkeys.KeyPair, string) {
		kp, pub := newKey(t, nkeys.CreateAccount)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		key := pub
		if importAs != "" {
			key = importAs // a forged import: another account's key
		}
		ac.Imports.Add(&jwt.Import{Name: "read", Account: busPub, Type: jwt.Service,
			Subject: jwt.Subject("sessionbus.read.get." + key), LocalSubject: "sessionbus.read.get"})
		ajwt, err := ac.Encode(op)
		require.NoError(t, err)
		resp, err := sysConn.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(ajwt), natstest.Patience)
		require.NoError(t, err)
		var r struct {
			Error *struct{ Description string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(resp.Data, &r))
		require.Nil(t, r.Error, "claims update of %s", name)
		return kp, pub
	}
	aKP, aPub := addService("svc-a", "")
	bKP, bPub := addService("svc-b", "")
	forgerKP, forgerPub := addService("svc-forger", aPub)

	// The bus answers, telling who called from the subject's last token.
	busConn := natstest.Connect(t, srv, userCreds(busKP, busPub))
	type seen struct{ subject, reply string }
	got := make(chan seen, 16)
	_, err = busConn.Subscribe("sessionbus.read.get.*", func(m *nats.Msg) {
		got <- seen{m.Subject, m.Reply}
		_ = m.Respond([]byte("caller=" + m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]))
	})
	require.NoError(t, err)
	require.NoError(t, busConn.Flush())

	a := natstest.Connect(t, srv, userCreds(aKP, aPub))
	reply, err := a.Request("sessionbus.read.get", []byte("{}"), natstest.Patience)
	require.NoError(t, err)
	assert.Equal(t, "caller="+aPub, string(reply.Data), "the caller is the account the server asserts")
	s := <-got
	assert.True(t, strings.HasPrefix(s.reply, "_R_."), "the bus sees a reply subject the server mapped: %s", s.reply)

	// A reply subject the service chose is the service's own: aimed at a
	// bucket subject, the bus's answer lands in svc-a's account, where
	// svc-a (and nobody in the bus account) sees it.
	inA, err := a.SubscribeSync("$KV.sessions.>")
	require.NoError(t, err)
	inBus, err := busConn.SubscribeSync("$KV.sessions.>")
	require.NoError(t, err)
	inB := natstest.Connect(t, srv, userCreds(bKP, bPub))
	bSub, err := inB.SubscribeSync("$KV.sessions.>")
	require.NoError(t, err)
	require.NoError(t, busConn.Flush())
	require.NoError(t, inB.Flush())
	require.NoError(t, a.PublishRequest("sessionbus.read.get", "$KV.sessions.s.victim", []byte("{}")))
	m, err := inA.NextMsg(natstest.Patience)
	require.NoError(t, err)
	assert.Equal(t, "caller="+aPub, string(m.Data))
	_, err = inBus.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "nothing reaches the bus account's own subject")
	_, err = bSub.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "nothing reaches another service's account")

	// An account that imports with another account's key gets no route.
	forger := natstest.Connect(t, srv, userCreds(forgerKP, forgerPub))
	_, err = forger.Request("sessionbus.read.get", []byte("{}"), time.Second)
	assert.ErrorIs(t, err, nats.ErrNoResponders, "an import naming another account is not honoured")
}

func newKey(t *testing.T, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := create()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return kp, pub
}
