package auth_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
)

// opEnv is a bus in operator mode: an embedded server set up by
// auth.OperatorServerOptions, the bus in the BUS account, and every
// service in an account of its own.
type opEnv struct {
	srvURL string
	dir    string
	nc     *nats.Conn // the bus's connection (BUS account)
	st     *kvstore.Store
	m      *bus.Manager
	acc    *auth.Accounts
	accCfg auth.AccountsConfig
	store  string // the server's JetStream directory
}

func startOperatorBus(t *testing.T, tune ...func(*server.Options)) *opEnv {
	t.Helper()
	dir := t.TempDir()
	keys, err := auth.BootstrapOperator(dir)
	require.NoError(t, err)
	opts, err := auth.OperatorServerOptions(natstest.Options(t), keys)
	require.NoError(t, err)
	for _, f := range tune {
		f(opts)
	}
	srv := natstest.RunServerWithOptions(t, opts)
	busUser, err := keys.BusUser()
	require.NoError(t, err)
	sysUser, err := keys.SystemUser()
	require.NoError(t, err)
	nc := natstest.Connect(t, srv, busUser)
	sys := natstest.Connect(t, srv, sysUser)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := natstest.Context(t)
	st, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.NoError(t, err)
	rcfg := events.DefaultRelayConfig()
	rcfg.Logger = quiet()
	relay, err := events.NewRelay(st, js, rcfg)
	require.NoError(t, err)
	require.NoError(t, relay.Start(ctx))
	t.Cleanup(func() { _ = relay.Close() })
	dial := func(opts ...nats.Option) (*nats.Conn, error) { return nats.Connect(srv.ClientURL(), opts...) }
	accCfg := auth.AccountsConfig{Keys: keys, System: sys, Bus: js, Dial: dial, Services: st, Logger: quiet()}
	acc, err := auth.NewAccounts(accCfg)
	require.NoError(t, err)
	t.Cleanup(acc.Close)
	m, err := bus.New(st, "bus", time.Hour, bus.WithAccounts(acc), bus.WithLogger(quiet()))
	require.NoError(t, err)
	svc, err := natsapi.New(nc, m, natsapi.WithCallers(acc), natsapi.WithLogger(quiet()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close() })
	return &opEnv{srvURL: srv.ClientURL(), dir: dir, nc: nc, st: st, m: m, acc: acc, accCfg: accCfg, store: opts.StoreDir}
}

// register registers a service and returns its credentials file's path.
func (e *opEnv) register(t *testing.T, id string, perms ...string) string {
	t.Helper()
	creds, err := e.m.RegisterService(natstest.Context(t), bus.ServiceCredential{ServiceID: id, Permissions: perms}, "")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), id+".creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	return path
}

func (e *opEnv) connect(t *testing.T, creds string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(e.srvURL, nats.UserCredentials(creds), nats.MaxReconnects(0))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func (e *opEnv) client(t *testing.T, creds, id string) *client.Client {
	t.Helper()
	c, err := client.New(e.connect(t, creds), client.WithServiceID(id), client.WithTimeout(10*time.Second))
	require.NoError(t, err)
	return c
}

// A service logs in with the .creds file `service add` hands out, can
// make exactly the calls its permissions name, and is known to the bus by
// its account, not by anything it says.
func TestAccounts_PermissionsAreImports(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	writer := e.client(t, e.register(t, "login-svc", auth.PermSessionRead, auth.PermSessionWrite), "login-svc")
	reader := e.client(t, e.register(t, "order-svc", auth.PermSessionRead), "order-svc")

	s, err := writer.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	got, err := reader.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "u1", got.LoginID)

	_, err = reader.CreateSession(ctx, "u2", "tok-2")
	require.Error(t, err, "a read-only service cannot create")
	list, err := e.m.SessionsByLogin(ctx, "u2")
	require.NoError(t, err)
	assert.Empty(t, list)

	// Claiming another service's id in the subject reaches nothing.
	impostor := e.client(t, e.register(t, "impostor", auth.PermSessionRead), "login-svc")
	_, err = impostor.GetSession(ctx, s.SessionID)
	require.Error(t, err, "a service cannot call as another")
}

// Replies the bus sends cannot be aimed at the bus's own subjects or at
// another service's: a reply subject a service chooses stays in its own
// account, and the bus sees only subjects the server mapped.
func TestAccounts_RepliesStayInTheCallersAccount(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	writer := e.client(t, e.register(t, "login-svc", auth.PermSessionRead, auth.PermSessionWrite), "login-svc")
	s, err := writer.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)

	// Watch the bus account and another service's account for anything
	// the attack would put there.
	inBus, err := e.nc.SubscribeSync(">")
	require.NoError(t, err)
	require.NoError(t, e.nc.Flush())
	victim := e.connect(t, e.register(t, "victim", auth.PermSessionRead))
	inVictim, err := victim.SubscribeSync("_INBOX.>")
	require.NoError(t, err)
	require.NoError(t, victim.Flush())

	attacker := e.connect(t, e.register(t, "attacker", auth.PermSessionRead))
	mine, err := attacker.SubscribeSync("_INBOX.>")
	require.NoError(t, err)
	targets := []string{
		"$JS.API.STREAM.PURGE.KV_sessions",
		"$KV.sessions.s." + s.SessionID,
		"$KV.services.admin",
		"session.deleted." + s.SessionID,
		"sessionbus.write.update.login-svc",
		"_INBOX.victim-reply",
	}
	for _, target := range targets {
		// The attacker may only publish its imports; it names the target
		// as the reply subject, which NATS checks against its sub rights
		// only when it publishes there itself.
		require.NoError(t, attacker.PublishRequest("sessionbus.read.get.attacker", target, []byte(`{"session_id":"`+s.SessionID+`"}`)))
	}
	// The attacker's own _INBOX target shows the bus did answer.
	require.NoError(t, attacker.PublishRequest("sessionbus.read.get.attacker", "_INBOX.attacker-own", []byte(`{"session_id":"`+s.SessionID+`"}`)))
	m, err := mine.NextMsg(natstest.Patience)
	require.NoError(t, err)
	assert.Contains(t, string(m.Data), s.SessionID)

	for {
		m, err := inBus.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		if strings.HasPrefix(m.Reply, "$JS.ACK.") {
			continue // a JetStream delivery to the bus's own consumers (the relay's feed), not a reply
		}
		for _, target := range targets {
			assert.NotEqual(t, target, m.Subject, "a reply reached the bus account")
		}
	}
	_, err = inVictim.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "a reply reached another service's account")

	// Defence in depth: a request that reaches the bus with a reply
	// subject the server did not map (here: sent inside the bus account)
	// is not answered.
	direct, err := e.nc.SubscribeSync("_INBOX.direct")
	require.NoError(t, err)
	require.NoError(t, e.nc.PublishRequest("sessionbus.read.get.login-svc", "_INBOX.direct", []byte(`{"session_id":"`+s.SessionID+`"}`)))
	_, err = direct.NextMsg(500 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "an unmapped reply subject gets no answer")

	got, err := e.m.GetSession(ctx, s.SessionID)
	require.NoError(t, err, "the session survives")
	assert.Equal(t, "u1", got.LoginID)
	_, err = e.m.ListServices(ctx)
	require.NoError(t, err)
}

// Removing a service closes its connections and its account can call
// nothing any more; its id registered again is a new account.
func TestAccounts_RemoveClosesConnections(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	creds := e.register(t, "gone", auth.PermSessionRead)
	nc := e.connect(t, creds)
	require.NoError(t, e.m.RemoveService(ctx, "gone"))
	require.Eventually(t, nc.IsClosed, natstest.Patience, 10*time.Millisecond, "the removed service's connection is closed")
	_, err := nats.Connect(e.srvURL, nats.UserCredentials(creds), nats.MaxReconnects(0))
	require.Error(t, err, "its credentials log in no more")

	again := e.client(t, e.register(t, "gone", auth.PermSessionRead), "gone")
	_, err = again.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrSessionNotFound, "the id registered again works with its new account")
}

// Rotation: the new credentials work at once; connections with the old
// ones keep working for the grace, then are closed.
func TestAccounts_RotationGraceEndsOldConnections(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	oldPath := e.register(t, "rot", auth.PermSessionRead)
	old := e.connect(t, oldPath)
	fresh, err := e.m.RotateService(ctx, "rot", "", 2*time.Second)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "new.creds")
	require.NoError(t, os.WriteFile(path, []byte(fresh), 0o600))
	freshConn := e.connect(t, path)
	c, err := client.New(freshConn, client.WithServiceID("rot"))
	require.NoError(t, err)
	assert.False(t, old.IsClosed(), "the old credentials work during the grace")
	require.Eventually(t, old.IsClosed, natstest.Patience, 10*time.Millisecond, "closed when the grace ends")
	_, err = c.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrSessionNotFound, "the new credentials still work")
	_, err = nats.Connect(e.srvURL, nats.UserCredentials(oldPath), nats.NoReconnect())
	require.Error(t, err, "the old credentials log in no more")

	_, err = e.m.RotateService(ctx, "rot", "", 0)
	require.NoError(t, err)
	require.Eventually(t, freshConn.IsClosed, natstest.Patience, 10*time.Millisecond,
		"a rotation without grace closes the previous credentials' connections at once")
	_, err = nats.Connect(e.srvURL, nats.UserCredentials(path), nats.NoReconnect())
	require.Error(t, err, "and they log in no more")
}

// The admin's credentials file is written once and kept while it matches
// the admin's record.
func TestAccounts_AdminCreds(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	path := auth.AdminCredsPath(e.dir)
	created, err := auth.EnsureAdminCreds(ctx, e.m, e.acc, path)
	require.NoError(t, err)
	assert.True(t, created)
	created, err = auth.EnsureAdminCreds(ctx, e.m, e.acc, path)
	require.NoError(t, err)
	assert.False(t, created, "a matching file is kept")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	admin := e.client(t, path, auth.AdminServiceID)
	list, err := admin.ListServices(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.NotEmpty(t, list[0].Account)

	// Another bus process without the file (its own data dir) gets a new
	// user of the same admin account; the first file keeps working.
	otherPath := filepath.Join(t.TempDir(), "admin.creds")
	created, err = auth.EnsureAdminCreds(ctx, e.m, e.acc, otherPath)
	require.NoError(t, err)
	assert.True(t, created)
	_, err = e.client(t, otherPath, auth.AdminServiceID).ListServices(ctx)
	require.NoError(t, err)
	_, err = admin.ListServices(ctx)
	require.NoError(t, err, "nobody else's admin login is revoked")

	// After a rotation of the admin, a file with a revoked user is
	// replaced by a new user's.
	_, err = e.m.RotateService(ctx, auth.AdminServiceID, "", 0)
	require.NoError(t, err)
	created, err = auth.EnsureAdminCreds(ctx, e.m, e.acc, path)
	require.NoError(t, err)
	assert.True(t, created, "a revoked admin file is replaced")
	_, err = e.client(t, path, auth.AdminServiceID).ListServices(ctx)
	require.NoError(t, err)

	// An admin record removed behind the file's back is registered anew.
	require.NoError(t, e.m.RemoveService(ctx, auth.AdminServiceID))
	created, err = auth.EnsureAdminCreds(ctx, e.m, e.acc, path)
	require.NoError(t, err)
	assert.True(t, created)
	admin = e.client(t, path, auth.AdminServiceID)
	_, err = admin.ListServices(ctx)
	require.NoError(t, err)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A service with events.subscribe listens on its account's own copy of
// the events: a group listener (deliver all) gets the events of changes
// made before the service existed and after it started, and the service can neither delete that stream nor
// reach the bus's JetStream API.
func TestAccounts_ListenersInTheirOwnAccount(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	writer := e.client(t, e.register(t, "login-svc", auth.PermSessionRead, auth.PermSessionWrite), "login-svc")
	before, err := writer.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)

	audit := e.connect(t, e.register(t, "audit", auth.PermEventsSubscribe))
	js, err := jetstream.New(audit)
	require.NoError(t, err)
	got := make(chan events.Event, 16)
	var l *events.Listener
	require.Eventually(t, func() bool { // the account's stream may still be catching up
		l, err = events.Listen(ctx, js, "audit-log", func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}, events.WithDeliverAll(), events.WithLogger(quiet()))
		return err == nil
	}, natstest.Patience, 50*time.Millisecond, "listen: %v", err)
	t.Cleanup(func() { _ = l.Close() })
	after, err := writer.CreateSession(ctx, "u2", "tok-2")
	require.NoError(t, err)
	want := map[string]bool{before.SessionID: true, after.SessionID: true}
	deadline := time.After(natstest.Patience)
	for len(want) > 0 {
		select {
		case ev := <-got:
			assert.Equal(t, events.SessionCreated, ev.Type)
			delete(want, ev.SessionID)
		case <-deadline:
			if st, err := js.Stream(ctx, auth.DefaultEventsStream); err == nil {
				info := st.CachedInfo()
				t.Logf("the account's stream: %+v; sources: %+v", info.State, info.Sources)
			}
			t.Fatalf("events missing: %v", want)
		}
	}

	// A refused publish gets no answer: each attempt is bounded.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = js.DeleteStream(short, auth.DefaultEventsStream)
	cancel()
	require.Error(t, err, "a service cannot delete its events stream")
	_, err = audit.Request("$JS.bus.API.CONSUMER.CREATE."+auth.DefaultEventsStream, []byte(`{"config":{"deliver_subject":"$KV.sessions.x"}}`), time.Second)
	require.Error(t, err, "a service cannot create consumers on the bus's stream")
	_, err = audit.Request("$JS.API.STREAM.PURGE."+auth.DefaultEventsStream, nil, time.Second)
	require.Error(t, err, "nor purge its copy")

	// Removal takes the consumer that fed the account away.
	rec, err := e.st.GetService(ctx, "audit")
	require.NoError(t, err)
	busJS, err := jetstream.New(e.nc)
	require.NoError(t, err)
	_, err = busJS.PushConsumer(ctx, auth.DefaultEventsStream, rec.Credential.Account)
	require.NoError(t, err, "the bus feeds the account through a consumer named after it")
	streamDir := filepath.Join(e.store, "jetstream", rec.Credential.Account, "streams", auth.DefaultEventsStream)
	require.DirExists(t, streamDir)
	require.NoError(t, e.m.RemoveService(ctx, "audit"))
	_, err = busJS.PushConsumer(ctx, auth.DefaultEventsStream, rec.Credential.Account)
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound, "a removed service's feed is gone")
	assert.NoDirExists(t, streamDir, "and its copy of the events")
}

// The end of a rotation's grace is kept in the account, not only in the
// rotating process: when that process is gone before the grace ends,
// another bus process's sweep revokes the old credentials.
func TestAccounts_RotationSurvivesTheRotatingProcess(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	old := e.connect(t, e.register(t, "rot", auth.PermSessionRead))
	_, err := e.m.RotateService(ctx, "rot", "", time.Hour) // a later, longer rotation must not delay an earlier one
	require.NoError(t, err)
	_, err = e.m.RotateService(ctx, "rot", "", 2*time.Second)
	require.NoError(t, err)
	e.acc.Close() // the rotating process is gone: its timers with it

	other, err := auth.NewAccounts(e.accCfg)
	require.NoError(t, err)
	t.Cleanup(other.Close)
	rec, err := e.st.GetService(ctx, "rot")
	require.NoError(t, err)
	require.NoError(t, other.Sweep(ctx, []string{rec.Credential.Account}))
	assert.False(t, old.IsClosed(), "nothing is due before the grace ends")
	require.Eventually(t, old.IsClosed, natstest.Patience, 20*time.Millisecond,
		"the other process's timer revokes the old credentials when the grace ends")
}

// The bus takes an account's service from the account's name only when
// the service's record names that account: an account left over from an
// earlier registration of the same id (or a record changed under it) is
// refused.
func TestAccounts_CallerMustMatchTheRecord(t *testing.T) {
	t.Parallel()
	e := startOperatorBus(t)
	ctx := natstest.Context(t)
	c := e.client(t, e.register(t, "svc", auth.PermSessionRead), "svc")
	e.register(t, "other", auth.PermSessionRead)
	rec, err := e.st.GetService(ctx, "svc")
	require.NoError(t, err)
	otherRec, err := e.st.GetService(ctx, "other")
	require.NoError(t, err)
	rec.Credential.Account = otherRec.Credential.Account
	require.NoError(t, e.st.UpdateService(ctx, rec))

	_, err = c.GetSession(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, bus.ErrUnauthenticated, "an account its service's record does not name is refused")
}
