package integration

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
)

// TestHostile_ServicesCannotReachTheBusData runs `serve` (accounts mode, the
// default) and tries, as a read-only service, a writing service and an
// events-only service, to aim the bus's replies (and their own JetStream
// API's answers) at every subject that matters: the buckets, the JetStream
// API of the bus's streams, the events and audit subjects, the relay's
// lease, other services' subjects and inboxes. It also attacks another
// service's listener group. Afterwards every session, service and listener
// is intact, and no event but the legitimate ones was seen.
func TestHostile_ServicesCannotReachTheBusData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startBinary(t, bin, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", dir)
	ctx := natstest.Context(t)

	writerConn := addService(t, bin, p.url, dir, "login-svc", "session.read,session.write")
	readerConn := addService(t, bin, p.url, dir, "reader", "session.read")
	eventsConn := addService(t, bin, p.url, dir, "listener", "events.subscribe")
	victimConn := addService(t, bin, p.url, dir, "victim", "session.read,events.subscribe")
	adminConn, err := nats.Connect(p.url, nats.UserCredentials(filepath.Join(dir, "auth", "admin.creds")))
	require.NoError(t, err)
	t.Cleanup(adminConn.Close)
	admin, err := client.New(adminConn, client.WithServiceID("admin"))
	require.NoError(t, err)
	writer, err := client.New(writerConn, client.WithServiceID("login-svc"))
	require.NoError(t, err)

	s, err := writer.CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	require.NoError(t, writer.SetAttribute(ctx, s.SessionID, "role", "user"))
	servicesBefore, err := admin.ListServices(ctx)
	require.NoError(t, err)

	// Every event the bus announces, seen by the admin's account, and
	// the victim's listener group.
	var mu sync.Mutex
	var seen []events.Event
	adminJS, err := jetstream.New(adminConn)
	require.NoError(t, err)
	var watch *events.Listener
	require.Eventually(t, func() bool {
		watch, err = events.Broadcast(ctx, adminJS, func(_ context.Context, ev events.Event) error {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
			return nil
		}, events.WithDeliverAll(), events.WithLogger(slog.New(slog.DiscardHandler)))
		return err == nil
	}, natstest.Patience, 50*time.Millisecond, "watch: %v", err)
	t.Cleanup(func() { _ = watch.Close() })
	victimJS, err := jetstream.New(victimConn)
	require.NoError(t, err)
	var victimGroup *events.Listener
	require.Eventually(t, func() bool {
		victimGroup, err = events.Listen(ctx, victimJS, "billing", func(context.Context, events.Event) error { return nil },
			events.WithLogger(slog.New(slog.DiscardHandler)))
		return err == nil
	}, natstest.Patience, 50*time.Millisecond, "victim group: %v", err)
	t.Cleanup(func() { _ = victimGroup.Close() })
	victimInbox, err := victimConn.SubscribeSync("_INBOX.victim.>")
	require.NoError(t, err)
	require.NoError(t, victimConn.Flush())

	targets := []string{
		"$JS.API.STREAM.PURGE.KV_sessions",
		"$JS.API.STREAM.DELETE.KV_services",
		"$JS.API.STREAM.PURGE.SESSION_EVENTS",
		"$JS.API.CONSUMER.DELETE.SESSION_EVENTS.billing",
		"$KV.sessions.s." + s.SessionID,
		"$KV.services.admin",
		"$KV.session-bus-relay.lease",
		"session.deleted." + s.SessionID,
		"sessionaudit.service.removed.victim",
		"sessionbus.write.delete.login-svc",
		"sessionbus.admin.remove_service.admin",
		"_INBOX.victim.reply",
	}
	get := []byte(`{"session_id":"` + s.SessionID + `"}`)
	for _, target := range targets {
		// A reader's and a writer's requests with the target as reply
		// subject (a malformed body too: the error reply goes there as well).
		require.NoError(t, readerConn.PublishRequest("sessionbus.read.get.reader", target, get))
		require.NoError(t, readerConn.PublishRequest("sessionbus.read.get.reader", target, []byte(`{`)))
		require.NoError(t, writerConn.PublishRequest("sessionbus.write.set_attribute.login-svc", target,
			[]byte(`{"session_id":"`+s.SessionID+`","key":"x","value":"forged"}`)))
		// An events-only service has no bus subject at all; its own
		// JetStream API answers with the target as reply.
		require.NoError(t, eventsConn.PublishRequest("$JS.API.STREAM.INFO.SESSION_EVENTS", target, nil))
		// Publishing to the target directly is refused or stays in the
		// attacker's own account.
		_ = readerConn.Publish(target, []byte(`{"forged":true}`))
	}
	require.NoError(t, readerConn.Flush())
	require.NoError(t, writerConn.Flush())
	require.NoError(t, eventsConn.Flush())

	// The listener attacks on the victim's group: in the attacker's
	// account there is no such consumer, and a push consumer it makes
	// delivers within its own account.
	listenerJS, err := jetstream.New(eventsConn)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = listenerJS.DeleteConsumer(short, events.DefaultStreamConfig().Name, "billing")
	cancel()
	require.Error(t, err, "another service's group is not reachable")
	short, cancel = context.WithTimeout(ctx, 5*time.Second)
	_, err = listenerJS.CreateOrUpdatePushConsumer(short, events.DefaultStreamConfig().Name, jetstream.ConsumerConfig{
		Durable: "steal", DeliverSubject: "_INBOX.victim.push", DeliverPolicy: jetstream.DeliverAllPolicy})
	cancel()
	if err == nil {
		t.Log("the listener made a push consumer in its own account")
	}

	// A barrier: a new session after the attack; once its event is seen,
	// every event the attack could have caused has been seen too.
	barrier, err := writer.CreateSession(ctx, "u-barrier", "tok-barrier")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range seen {
			if ev.SessionID == barrier.SessionID {
				return true
			}
		}
		return false
	}, natstest.Patience, 20*time.Millisecond, "the barrier's event arrives")

	got, err := writer.GetSession(ctx, s.SessionID)
	require.NoError(t, err, "the session survives")
	assert.Equal(t, "u1", got.LoginID)
	assert.Equal(t, "user", got.Attributes["role"])
	// The writer's set_attribute requests themselves were legitimate (its
	// own permission); their replies went to its own account.
	servicesAfter, err := admin.ListServices(ctx)
	require.NoError(t, err)
	assert.Equal(t, servicesBefore, servicesAfter, "every service is intact")
	select {
	case <-victimGroup.Done():
		t.Fatalf("the victim's group stopped: %v", victimGroup.Err())
	default:
	}
	_, err = victimJS.Consumer(ctx, events.DefaultStreamConfig().Name, "billing")
	require.NoError(t, err, "the victim's consumer is intact")
	_, err = victimInbox.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "nothing reached the victim's inbox")

	mu.Lock()
	defer mu.Unlock()
	for _, ev := range seen {
		assert.Contains(t, []string{s.SessionID, barrier.SessionID}, ev.SessionID, "an event of an unknown session: %+v", ev)
		assert.Contains(t, []events.Type{events.SessionCreated, events.SessionUpdated}, ev.Type, "a forged event: %+v", ev)
	}
	require.NoError(t, p.stop(t))
}
