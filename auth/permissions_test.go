package auth_test

import (
	"context"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/kvstore"
)

func TestPermissions(t *testing.T) {
	t.Parallel()
	events := []string{
		"$JS.API.STREAM.INFO.SESSION_EVENTS",
		"$JS.API.CONSUMER.CREATE.SESSION_EVENTS",
		"$JS.API.CONSUMER.CREATE.SESSION_EVENTS.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.SESSION_EVENTS.>",
		"$JS.API.CONSUMER.INFO.SESSION_EVENTS.>",
		"$JS.API.CONSUMER.DELETE.SESSION_EVENTS.>",
		"$JS.API.CONSUMER.MSG.NEXT.SESSION_EVENTS.>",
		"$JS.ACK.SESSION_EVENTS.>",
		"$JS.FC.SESSION_EVENTS.>",
	}
	tests := []struct {
		name      string
		givePerms []string
		wantPub   jwt.StringList
		wantDeny  jwt.StringList
		wantSub   jwt.StringList
	}{
		{name: "none", wantDeny: jwt.StringList{">"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "unknown", givePerms: []string{"read", "session.*", ">", "custom"}, wantDeny: jwt.StringList{">"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "read", givePerms: []string{auth.PermSessionRead}, wantPub: jwt.StringList{"sessionbus.read.*.svc"}, wantSub: jwt.StringList{"_INBOX_svc.>", "sessionbus.cache"}},
		{name: "write", givePerms: []string{auth.PermSessionWrite}, wantPub: jwt.StringList{"sessionbus.write.*.svc"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "session admin", givePerms: []string{auth.PermSessionAdmin}, wantPub: jwt.StringList{"sessionbus.sessions.*.svc", "$SRV.>"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "verify", givePerms: []string{auth.PermServiceVerify}, wantPub: jwt.StringList{"sessionbus.service.verify.svc"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "service admin", givePerms: []string{auth.PermServiceAdmin}, wantPub: jwt.StringList{"sessionbus.admin.*.svc"}, wantSub: jwt.StringList{"_INBOX_svc.>"}},
		{name: "events", givePerms: []string{auth.PermEventsSubscribe}, wantPub: events, wantSub: jwt.StringList{"_INBOX_svc.>", "session.>"}},
		{
			name:      "repeated and unordered",
			givePerms: []string{auth.PermSessionWrite, auth.PermSessionRead, auth.PermSessionWrite},
			wantPub:   jwt.StringList{"sessionbus.read.*.svc", "sessionbus.write.*.svc"},
			wantSub:   jwt.StringList{"_INBOX_svc.>", "sessionbus.cache"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := auth.Permissions("svc", tt.givePerms)
			assert.Equal(t, tt.wantPub, p.Pub.Allow)
			assert.Equal(t, tt.wantDeny, p.Pub.Deny)
			assert.Equal(t, tt.wantSub, p.Sub.Allow)
			assert.Empty(t, p.Sub.Deny)
			assert.Nil(t, p.Resp)
			for _, s := range append(p.Pub.Allow, p.Sub.Allow...) {
				assert.NotContains(t, s, "KV", "nothing reaches the sessions bucket")
			}
		})
	}
}

func TestPermissions_AreTheBusNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, bus.AllPermissions, auth.AllPermissions)
	assert.NoError(t, bus.ValidatePermissions(auth.AllPermissions))
}

// TestCallout_LegacyUnknownPermissions logs in as a service whose record
// was stored before the bus refused unknown permission names: the names
// grant nothing, on any class.
func TestCallout_LegacyUnknownPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	sess, err := e.m.CreateSession(ctx, "someone", "token-of-someone-0123456789")
	require.NoError(t, err)

	// Straight into the store, as an older bus would have written it.
	scfg := kvstore.DefaultConfig()
	scfg.Storage = jetstream.MemoryStorage
	st, err := kvstore.New(ctx, e.js, scfg)
	require.NoError(t, err)
	const id, secret = "svc-legacy", "legacy-secret-0123456789"
	require.NoError(t, st.CreateService(ctx, bus.ServiceRecord{
		Credential: bus.ServiceCredential{ServiceID: id, Permissions: []string{"custom.thing", "read", "session.*", ">"}},
		SecretHash: bus.HashSecret(secret),
	}))

	sc, err := e.connect(t, id, secret)
	require.NoError(t, err)
	c, err := newClient(sc, id)
	require.NoError(t, err)
	for _, op := range matrixOps(sess.SessionID) {
		t.Run(op.name, func(t *testing.T) {
			if op.raw != nil {
				op.raw(t, e, sc, id, false)
				return
			}
			require.ErrorIs(t, op.client(ctx, c, id, secret), bus.ErrPermissionDenied)
		})
	}
}
