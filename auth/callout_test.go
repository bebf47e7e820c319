package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/natstest"
)

// matrixOp is one operation class, run as a service.
type matrixOp struct {
	name string
	perm string // the permission that allows it
	// client ops fail with bus.ErrPermissionDenied when denied; raw ops
	// check the server's violation themselves (want says allowed).
	client func(ctx context.Context, c *client.Client, id, secret string) error
	raw    func(t *testing.T, e *env, sc *svcConn, id string, want bool)
}

func matrixOps(sessionID string) []matrixOp {
	return []matrixOp{
		{name: "read", perm: auth.PermSessionRead, client: func(ctx context.Context, c *client.Client, _, _ string) error {
			_, err := c.GetSession(ctx, sessionID)
			return err
		}},
		{name: "write", perm: auth.PermSessionWrite, client: func(ctx context.Context, c *client.Client, id, _ string) error {
			s, err := c.CreateSession(ctx, "login-"+id, "token-"+bus.GenerateSecret())
			if err == nil && s.ServiceID != id {
				return fmt.Errorf("created by %q, want %q", s.ServiceID, id)
			}
			return err
		}},
		{name: "service", perm: auth.PermServiceVerify, client: func(ctx context.Context, c *client.Client, id, secret string) error {
			_, err := c.VerifyService(ctx, id, secret)
			return err
		}},
		{name: "admin", perm: auth.PermServiceAdmin, client: func(ctx context.Context, c *client.Client, _, _ string) error {
			_, err := c.ListServices(ctx)
			return err
		}},
		{name: "sessions", perm: auth.PermSessionAdmin, raw: func(t *testing.T, _ *env, sc *svcConn, id string, want bool) {
			subject := "sessionbus.sessions.list." + id
			if want { // allowed by the server; nothing serves the class yet
				_, err := sc.Request(subject, nil, natstest.Patience)
				require.ErrorIs(t, err, nats.ErrNoResponders)
				return
			}
			require.NoError(t, sc.Publish(subject, nil))
			sc.wantViolation(t, subject)
		}},
		{name: "events", perm: auth.PermEventsSubscribe, raw: func(t *testing.T, e *env, sc *svcConn, id string, want bool) {
			sub, err := sc.SubscribeSync("session.>")
			require.NoError(t, err)
			// A denied JetStream request gets no answer: a short wait
			// suffices to see it fail; an allowed one may take long.
			wait := time.Second
			if want {
				wait = natstest.Patience
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			js, err := jetstream.New(sc.Conn)
			require.NoError(t, err)
			stream, err := js.Stream(ctx, auth.DefaultEventsStream)
			if !want {
				require.Error(t, err)
				sc.wantViolation(t, "session.>")
				return
			}
			require.NoError(t, err)
			// Core subscription.
			require.NoError(t, sc.Flush())
			require.NoError(t, e.nc.Publish("session.live."+id, []byte("x")))
			m, err := sub.NextMsg(natstest.Patience)
			require.NoError(t, err)
			assert.Equal(t, "session.live."+id, m.Subject)
			// A durable group: create, fetch, ack.
			cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable: "group-" + id, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "session.created.>",
			})
			require.NoError(t, err)
			jm, err := cons.Next(jetstream.FetchMaxWait(natstest.Patience))
			require.NoError(t, err)
			require.NoError(t, jm.DoubleAck(ctx))
			// An ordered consumer (broadcast listeners).
			oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"session.created.>"}})
			require.NoError(t, err)
			_, err = oc.Next(jetstream.FetchMaxWait(natstest.Patience))
			require.NoError(t, err)
		}},
	}
}

func TestCallout_PermissionMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	sess, err := e.m.CreateSession(ctx, "someone", "token-of-someone-0123456789")
	require.NoError(t, err)
	_, err = e.js.Publish(ctx, "session.created."+sess.SessionID, []byte(`{}`))
	require.NoError(t, err)
	ops := matrixOps(sess.SessionID)

	type grant struct {
		name  string
		perms []string
	}
	grants := []grant{{name: "none"}, {name: "all", perms: auth.AllPermissions}}
	for _, p := range auth.AllPermissions {
		grants = append(grants, grant{name: p, perms: []string{p}})
	}
	for _, g := range grants {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			id := "svc-" + strings.ReplaceAll(g.name, ".", "-")
			sc, c, secret := e.service(t, id, g.perms...)
			for _, op := range ops {
				allowed := false
				for _, p := range g.perms {
					allowed = allowed || p == op.perm
				}
				t.Run(op.name, func(t *testing.T) {
					if op.raw != nil {
						op.raw(t, e, sc, id, allowed)
						return
					}
					// The client's own timeout (callTimeout) bounds the
					// call: a denial it did not notice at once would come
					// back as unavailable, not as permission denied.
					err := op.client(context.Background(), c, id, secret)
					if allowed {
						require.NoError(t, err)
						return
					}
					require.ErrorIs(t, err, bus.ErrPermissionDenied)
				})
			}
		})
	}
}

func TestCallout_RefusedLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	secret := e.register(t, "svc-a", auth.PermSessionRead)
	tests := []struct {
		name string
		opts []nats.Option
	}{
		{name: "wrong secret", opts: []nats.Option{nats.UserInfo("svc-a", secret+"x")}},
		{name: "unknown id", opts: []nats.Option{nats.UserInfo("svc-nobody", secret)}},
		{name: "empty secret", opts: []nats.Option{nats.UserInfo("svc-a", "")}},
		{name: "anonymous"},
		{name: "token", opts: []nats.Option{nats.Token(secret)}},
		{name: "invalid id", opts: []nats.Option{nats.UserInfo("a.b.>", secret)}},
		{name: "bus user wrong password", opts: []nats.Option{nats.UserInfo(auth.BusUser, secret)}},
		{name: "sys user wrong password", opts: []nats.Option{nats.UserInfo(auth.SysUser, secret)}},
	}
	var msgs []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.connect(t, "", "", append(tt.opts, nats.NoReconnect())...)
			require.Error(t, err)
			require.ErrorIs(t, err, nats.ErrAuthorization)
			msgs = append(msgs, err.Error())
			for _, leak := range []string{"secret", "password", "unknown", "not found", "svc-"} {
				assert.NotContains(t, strings.ToLower(err.Error()), leak)
			}
		})
	}
	t.Logf("a refused login reads %q", msgs[0])
	for _, m := range msgs {
		assert.Equal(t, msgs[0], m, "every refusal reads the same")
	}
	// The right secret still works.
	_, err := e.connect(t, "svc-a", secret)
	require.NoError(t, err)
}

func TestCallout_CallerIsPinned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.register(t, "svc-b", auth.PermSessionWrite, auth.PermSessionRead)
	sc, own, _ := e.service(t, "svc-a", auth.PermSessionWrite, auth.PermSessionRead)
	ctx := context.Background()

	s, err := own.CreateSession(ctx, "alice", "token-alice-0123456789abcdef")
	require.NoError(t, err)
	assert.Equal(t, "svc-a", s.ServiceID, "the session is recorded as the authenticated caller's")
	stored, err := e.m.GetSession(ctx, s.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "svc-a", stored.ServiceID)

	// Naming another service as caller is refused by the server.
	other, err := client.New(sc.Conn, client.WithServiceID("svc-b"))
	require.NoError(t, err)
	_, err = other.CreateSession(ctx, "mallory", "token-mallory-0123456789abc")
	require.ErrorIs(t, err, bus.ErrPermissionDenied)
	_, err = other.GetSession(ctx, s.SessionID)
	require.ErrorIs(t, err, bus.ErrPermissionDenied)
	require.NoError(t, sc.Publish("sessionbus.write.create.svc-b", []byte(`{}`)))
	sc.wantViolation(t, "sessionbus.write.create.svc-b")
	sessions, err := e.m.SessionsByLogin(ctx, "mallory")
	require.NoError(t, err)
	assert.Empty(t, sessions)

	// Nor can it read replies meant for others.
	_, err = sc.SubscribeSync("_INBOX.>")
	require.NoError(t, err)
	sc.wantViolation(t, "_INBOX.>")
	_, err = sc.SubscribeSync(client.InboxPrefix("svc-b") + ".>")
	require.NoError(t, err)
	sc.wantViolation(t, client.InboxPrefix("svc-b"))
}

func TestCallout_NoEventsNoBucket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	sess, err := e.m.CreateSession(ctx, "bob", "token-bob-0123456789abcdef")
	require.NoError(t, err)
	plain, _, _ := e.service(t, "svc-plain", auth.PermSessionRead, auth.PermSessionWrite)
	ev, _, _ := e.service(t, "svc-events", auth.PermEventsSubscribe)

	_, err = plain.SubscribeSync("session.>")
	require.NoError(t, err)
	plain.wantViolation(t, "session.>")

	for _, sc := range []*svcConn{plain, ev} {
		js, err := jetstream.New(sc.Conn)
		require.NoError(t, err)
		qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err = js.KeyValue(qctx, "sessions")
		cancel()
		require.Error(t, err, "opening the sessions bucket is refused")
		_, err = sc.SubscribeSync("$KV.sessions.>")
		require.NoError(t, err)
		sc.wantViolation(t, "$KV.sessions.>")
		subj := "$JS.API.DIRECT.GET.KV_sessions.$KV.sessions.s." + sess.SessionID
		require.NoError(t, sc.Publish(subj, nil))
		sc.wantViolation(t, subj)
		require.NoError(t, sc.Publish("$KV.sessions.s."+sess.SessionID, []byte("{}")))
		sc.wantViolation(t, "$KV.sessions.s.")
	}
}

func TestCallout_RevokeEndsAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	sc, c, secret := e.service(t, "svc-gone", auth.PermSessionRead, auth.PermSessionWrite)
	keep, kc, _ := e.service(t, "svc-stays", auth.PermSessionWrite)
	_, err := c.CreateSession(ctx, "carol", "token-carol-0123456789abcd")
	require.NoError(t, err)

	require.NoError(t, e.m.RemoveService(ctx, "svc-gone"))
	start := time.Now()
	n, err := e.callout.Revoke(ctx, "svc-gone")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Eventually(t, func() bool { return !sc.IsConnected() }, natstest.Patience, 10*time.Millisecond)
	t.Logf("access ended %v after removal", time.Since(start))
	_, err = e.connect(t, "svc-gone", secret, nats.NoReconnect())
	require.ErrorIs(t, err, nats.ErrAuthorization)
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.CreateSession(qctx, "carol", "token-carol-2-0123456789ab")
	require.Error(t, err)

	// Others are untouched.
	assert.True(t, keep.IsConnected())
	_, err = kc.CreateSession(ctx, "dave", "token-dave-0123456789abcde")
	require.NoError(t, err)

	n, err = e.callout.Revoke(ctx, "svc-nobody")
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = e.callout.Revoke(ctx, auth.BusUser)
	require.ErrorIs(t, err, bus.ErrInvalidInput, "the bus's own users cannot be revoked")
}

func TestCallout_WatchRemovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{watch: true})
	sc, _, _ := e.service(t, "svc-gone", auth.PermSessionRead)
	keep, _, _ := e.service(t, "svc-stays", auth.PermSessionRead)

	start := time.Now()
	require.NoError(t, e.m.RemoveService(context.Background(), "svc-gone"))
	require.Eventually(t, func() bool { return !sc.IsConnected() }, natstest.Patience, 10*time.Millisecond)
	t.Logf("access ended %v after removal", time.Since(start))
	assert.True(t, keep.IsConnected())
}

func TestCallout_TokenExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for JWTs to expire")
	}
	t.Parallel()
	// Without a system connection only expiry ends access.
	e := newEnv(t, envConfig{ttl: 2 * time.Second, noSys: true})
	ctx := context.Background()
	gone, _, _ := e.service(t, "svc-gone", auth.PermSessionRead)
	reconnected := make(chan struct{}, 1)
	_, kc, _ := e.service(t, "svc-stays", auth.PermSessionWrite)
	secret := e.register(t, "svc-live", auth.PermSessionWrite)
	live, err := e.connect(t, "svc-live", secret, nats.ReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	lc, err := client.New(live.Conn, client.WithServiceID("svc-live"))
	require.NoError(t, err)

	_, err = e.callout.Revoke(ctx, "svc-gone")
	require.ErrorIs(t, err, auth.ErrNoSystemConn)
	require.NoError(t, e.m.RemoveService(ctx, "svc-gone"))
	require.Eventually(t, func() bool { return gone.IsClosed() || !gone.IsConnected() }, natstest.Patience, 20*time.Millisecond)

	// A service still registered logs in again when its JWT expires.
	select {
	case <-reconnected:
	case <-time.After(natstest.Patience):
		t.Fatal("no reconnect after expiry")
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := lc.CreateSession(ctx, "erin", "token-erin-"+bus.GenerateSecret())
		assert.NoError(c, err)
	}, natstest.Patience, 50*time.Millisecond)
	_, err = kc.CreateSession(ctx, "frank", "token-frank-"+bus.GenerateSecret())
	require.NoError(t, err)
}

func TestCallout_PlainRequests(t *testing.T) {
	t.Parallel()
	// Without an xkey on either side requests travel unencrypted.
	e := newEnv(t, envConfig{
		server:  func(o *server.Options) { o.AuthCallout.XKey = "" },
		callout: func(c *auth.Config) { c.XKey = nil },
	})
	_, c, _ := e.service(t, "svc-a", auth.PermSessionWrite)
	_, err := c.CreateSession(context.Background(), "gina", "token-gina-0123456789abcdef")
	require.NoError(t, err)
}

func TestCallout_NoSecretInClear(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{watch: true})
	ctx := context.Background()
	secrets := []string{e.keys.BusPassword, e.keys.SysPassword, e.keys.Admin.Secret}
	for _, k := range []interface{ Seed() ([]byte, error) }{e.keys.Issuer, e.keys.XKey} {
		seed, err := k.Seed()
		require.NoError(t, err)
		secrets = append(secrets, string(seed))
	}
	require.NoError(t, auth.EnsureAdmin(ctx, e.m, e.keys))
	_, admin, _ := e.service(t, "svc-admin", auth.AllPermissions...)
	reg, err := admin.RegisterService(ctx, bus.ServiceCredential{ServiceID: "svc-new", Permissions: []string{auth.PermSessionWrite}}, "")
	require.NoError(t, err)
	secrets = append(secrets, reg)
	sc, err := e.connect(t, "svc-new", reg)
	require.NoError(t, err)
	c, err := client.New(sc.Conn, client.WithServiceID("svc-new"))
	require.NoError(t, err)
	token := "token-secret-" + bus.GenerateSecret()
	secrets = append(secrets, token)
	_, err = c.CreateSession(ctx, "henry", token)
	require.NoError(t, err)
	_, err = e.connect(t, "svc-new", "wrong-"+reg, nats.NoReconnect())
	require.Error(t, err)
	_, err = e.callout.Revoke(ctx, "svc-new")
	require.NoError(t, err)

	var dump strings.Builder
	names := e.js.KeyValueStoreNames(ctx)
	for name := range names.Name() {
		kv, err := e.js.KeyValue(ctx, name)
		require.NoError(t, err)
		lister, err := kv.ListKeys(ctx)
		require.NoError(t, err)
		for key := range lister.Keys() {
			dump.WriteString(key + "\n")
			entry, err := kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			require.NoError(t, err)
			dump.Write(entry.Value())
			dump.WriteString("\n")
		}
	}
	require.NoError(t, names.Error())
	require.Contains(t, dump.String(), "svc-new", "the dump saw the services bucket")
	logs := e.logs.String()
	require.Contains(t, logs, "login refused")
	for _, s := range secrets {
		assert.NotContains(t, dump.String(), s, "a bucket holds a secret in clear")
		assert.NotContains(t, logs, s, "the log holds a secret in clear")
	}
}

func TestCallout_Close(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{watch: true})
	require.NoError(t, e.callout.Close())
	require.NoError(t, e.callout.Close(), "Close twice is fine")
	// Nobody answers logins any more.
	secret := e.register(t, "svc-late", auth.PermSessionRead)
	_, err := e.connect(t, "svc-late", secret, nats.NoReconnect())
	require.Error(t, err)
}

func TestNew_Invalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	user, _ := nkeys.CreateUser()
	tests := []struct {
		name string
		give func(*auth.Config)
	}{
		{name: "no issuer", give: func(c *auth.Config) { c.Issuer = nil }},
		{name: "user key as issuer", give: func(c *auth.Config) { c.Issuer = user }},
		{name: "account key as xkey", give: func(c *auth.Config) { c.XKey = c.Issuer }},
		{name: "short ttl", give: func(c *auth.Config) { c.TokenTTL = time.Millisecond }},
		{name: "no account", give: func(c *auth.Config) { c.Account = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.keys.Config()
			tt.give(&cfg)
			_, err := auth.New(e.nc, e.m, cfg)
			require.ErrorIs(t, err, auth.ErrInvalidConfig)
		})
	}
	_, err := auth.New(e.nc, nil, e.keys.Config())
	require.ErrorIs(t, err, auth.ErrInvalidConfig)
}

func TestCallout_DefaultInboxIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	secret := e.register(t, "svc-a", auth.PermSessionWrite)
	nc, err := nats.Connect(e.url, nats.UserInfo("svc-a", secret)) // no client.InboxPrefix
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c, err := client.New(nc, client.WithServiceID("svc-a"), client.WithTimeout(callTimeout))
	require.NoError(t, err)
	_, err = c.CreateSession(context.Background(), "jack", "token-jack-0123456789abcdef")
	require.ErrorIs(t, err, bus.ErrPermissionDenied, "replies on _INBOX.> are refused")
}
