package auth_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/natstest"
)

// TestSourcingProbe characterises how a service account gets its own copy
// of the bus's event stream without being able to create consumers in the
// bus account. The bus pre-creates, per service, a durable push consumer
// on its SESSION_EVENTS (ack policy flow_control, named after the
// service's account key, delivering to sessionbus.deliver.<key>); the
// service's own SESSION_EVENTS sources from it through the durable
// sourcing of nats-server 2.14+ (StreamSource.Consumer). For that the bus
// exports, each pinned to the importer's key by AccountTokenPosition, only
// the consumer's deliver subject (stream), its flow-control reply subject
// (service) and its reset API subject (service, the one request durable
// sourcing sends); no consumer-create API crosses. Each of the three
// imports is needed (observed by dropping one at a time): without the
// stream import the consumer sees no interest and delivers nothing;
// without the reset import the source never completes its setup (source
// "active": -1, nothing stored) although the consumer pushes to the
// subject; without the flow-control import events are stored but the
// consumer's ack floor stays 0 and the source reports "stream source
// consumer stalled on flow control" (10228).
func TestSourcingProbe(t *testing.T) {
	t.Parallel()
	ctx := natstest.Context(t)
	const stream = "SESSION_EVENTS"

	op, opPub := newKey(t, nkeys.CreateOperator)
	sysKP, sysPub := newKey(t, nkeys.CreateAccount)
	busKP, busPub := newKey(t, nkeys.CreateAccount)
	svcKP, svcPub := newKey(t, nkeys.CreateAccount)
	svc2KP, svc2Pub := newKey(t, nkeys.CreateAccount)
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	require.NoError(t, err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	require.NoError(t, err)

	bc := jwt.NewAccountClaims(busPub)
	bc.Name = "bus"
	bc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	bc.Exports.Add(
		// The per-service consumer's deliver subject: token 3 is the key.
		&jwt.Export{Name: "events", Subject: "sessionbus.deliver.*", Type: jwt.Stream, AccountTokenPosition: 3},
		// Flow-control replies ($JS.FC.<stream>.<consumer>.<nonce>): the
		// consumer is named after the service's key, token 4.
		&jwt.Export{Name: "events-fc", Subject: "$JS.FC." + stream + ".*.*", Type: jwt.Service, AccountTokenPosition: 4},
		// The reset request durable sourcing sends on (re)start
		// ($JS.API.CONSUMER.RESET.<stream>.<consumer>): token 6.
		&jwt.Export{Name: "events-reset", Subject: "$JS.API.CONSUMER.RESET." + stream + ".*", Type: jwt.Service, AccountTokenPosition: 6},
	)
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

	userCreds := func(accKP nkeys.KeyPair, perms *jwt.Permissions) nats.Option {
		ukp, upub := newKey(t, nkeys.CreateUser)
		uc := jwt.NewUserClaims(upub)
		if perms != nil {
			uc.Permissions = *perms
		}
		ujwt, err := uc.Encode(accKP)
		require.NoError(t, err)
		seed, err := ukp.Seed()
		require.NoError(t, err)
		return nats.UserJWTAndSeed(ujwt, string(seed))
	}
	sysConn := natstest.Connect(t, srv, userCreds(sysKP, nil))

	// imports is what `service add` would give a service account whose
	// key is key (another account's key for a forged one).
	imports := func(key string) []*jwt.Import {
		return []*jwt.Import{
			{Name: "events", Account: busPub, Type: jwt.Stream, Subject: jwt.Subject("sessionbus.deliver." + key)},
			{Name: "events-fc", Account: busPub, Type: jwt.Service, Subject: jwt.Subject("$JS.FC." + stream + "." + key + ".*")},
			{Name: "events-reset", Account: busPub, Type: jwt.Service,
				Subject:      jwt.Subject("$JS.API.CONSUMER.RESET." + stream + "." + key),
				LocalSubject: jwt.RenamingSubject("$JS.bus.API.CONSUMER.RESET." + stream + "." + key)},
		}
	}
	pushAccount := func(name, pub string, importKey string) {
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: 64 << 20, Streams: 1, Consumer: 8}
		ac.Imports.Add(imports(importKey)...)
		ajwt, err := ac.Encode(op)
		require.NoError(t, err)
		resp, err := sysConn.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(ajwt), natstest.Patience)
		require.NoError(t, err)
		var r struct {
			Error *struct{ Description string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(resp.Data, &r))
		require.Nil(t, r.Error, "claims update of %s", name)
	}
	pushAccount("svc", svcPub, svcPub)
	pushAccount("svc2", svc2Pub, svcPub) // forged: names svc's key

	// The bus: its stream, two events before any service exists.
	busConn := natstest.Connect(t, srv, userCreds(busKP, nil))
	busJS, err := jetstream.New(busConn)
	require.NoError(t, err)
	busStream, err := busJS.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"session.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	publish := func(id string) {
		t.Helper()
		_, err := busJS.Publish(ctx, "session.created."+id, []byte(id))
		require.NoError(t, err)
	}
	publish("e1")
	publish("e2")

	// `service add`: the bus creates the service's sourcing consumer.
	deliver := "sessionbus.deliver." + svcPub
	_, err = busJS.CreateOrUpdatePushConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:        svcPub,
		DeliverSubject: deliver,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		FlowControl:    true,
		IdleHeartbeat:  time.Second,
		MaxAckPending:  1024,
	})
	require.NoError(t, err)

	// The service's own stream, sourcing through that consumer.
	svcStreamCfg := jetstream.StreamConfig{
		Name:    stream,
		Storage: jetstream.FileStorage,
		Sources: []*jetstream.StreamSource{{
			Name:     stream,
			External: &jetstream.ExternalStream{APIPrefix: "$JS.bus.API"},
			Consumer: &jetstream.StreamConsumerSource{Name: svcPub, DeliverSubject: deliver},
		}},
	}
	svcConn := natstest.Connect(t, srv, userCreds(svcKP, nil))
	svcJS, err := jetstream.New(svcConn)
	require.NoError(t, err)
	_, err = svcJS.CreateStream(ctx, svcStreamCfg)
	require.NoError(t, err)
	publish("e3")
	publish("e4")

	// A listener, started after all four were published, on a connection
	// allowed only its own account's JetStream API, acks and inboxes.
	denied := make(chan error, 16)
	listenerConn := natstest.Connect(t, srv, userCreds(svcKP, &jwt.Permissions{
		Pub: jwt.Permission{Allow: jwt.StringList{"$JS.API.>", "$JS.ACK.>", "_INBOX.>"}},
		Sub: jwt.Permission{Allow: jwt.StringList{"_INBOX.>"}},
	}), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case denied <- err:
		default:
		}
	}))
	listenerJS, err := jetstream.New(listenerConn)
	require.NoError(t, err)
	var got []string
	var listener jetstream.Consumer
	listen := func() {
		t.Helper()
		var err error
		listener, err = listenerJS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "listener", AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
		got = nil
	}
	receive := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			batch, err := listener.FetchNoWait(n - len(got))
			if err != nil {
				return false
			}
			for m := range batch.Messages() {
				got = append(got, m.Subject()+"="+string(m.Data()))
				_ = m.Ack()
			}
			return len(got) >= n
		}, natstest.Patience, 50*time.Millisecond, "got %v", got)
	}
	listen()
	receive(4)
	assert.Equal(t, []string{"session.created.e1=e1", "session.created.e2=e2",
		"session.created.e3=e3", "session.created.e4=e4"}, got, "every event, in order, with its subject")

	// Flow-control replies cross back: the bus consumer's ack floor moves.
	busConsumer, err := busJS.PushConsumer(ctx, stream, svcPub)
	require.NoError(t, err)
	ackFloor := func(want uint64) {
		t.Helper()
		require.Eventually(t, func() bool {
			ci, err := busConsumer.Info(ctx)
			return err == nil && ci.AckFloor.Stream == want
		}, natstest.Patience, 50*time.Millisecond, "the bus consumer's ack floor reaches %d", want)
	}
	ackFloor(4)

	// svc2 imports with svc's key: nothing is routed to it.
	svc2Conn := natstest.Connect(t, srv, userCreds(svc2KP, nil))
	stolen, err := svc2Conn.SubscribeSync("sessionbus.deliver.>")
	require.NoError(t, err)
	require.NoError(t, svc2Conn.Flush())
	_, err = svc2Conn.Request("$JS.bus.API.CONSUMER.RESET."+stream+"."+svcPub, nil, time.Second)
	assert.ErrorIs(t, err, nats.ErrNoResponders, "a forged reset import is not honoured")
	publish("e5")
	receive(5)
	assert.Equal(t, "session.created.e5=e5", got[4])
	_, err = stolen.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "a forged stream import gets no events")

	// No subject svc can publish reaches a consumer-create API of the bus.
	createReq := func(name string) []byte {
		b, err := json.Marshal(map[string]any{"stream_name": stream, "config": map[string]any{
			"name": name, "deliver_subject": "session.injected", "ack_policy": "none"}})
		require.NoError(t, err)
		return b
	}
	for _, subj := range []string{
		"$JS.bus.API.CONSUMER.CREATE." + stream,
		"$JS.bus.API.CONSUMER.CREATE." + stream + ".evil",
		"$JS.bus.API.CONSUMER.CREATE." + stream + ".evil.session.>",
		"$JS.bus.API.CONSUMER.DURABLE.CREATE." + stream + ".evil",
		"$JS.bus.API.CONSUMER.RESET." + stream + ".evil",
		"$JS.bus.API.STREAM.INFO." + stream,
		"$JS.FC." + stream + ".evil.x",
	} {
		_, err := svcConn.Request(subj, createReq("evil"), time.Second)
		assert.ErrorIs(t, err, nats.ErrNoResponders, "svc reaches nothing of the bus on %s", subj)
	}
	// Its own API creates consumers on its own stream only.
	_, err = svcConn.Request("$JS.API.CONSUMER.CREATE."+stream+".evil", createReq("evil"), natstest.Patience)
	require.NoError(t, err)
	_, err = svcJS.PushConsumer(ctx, stream, "evil")
	require.NoError(t, err, "the create landed in svc's own stream")
	require.NoError(t, svcJS.DeleteConsumer(ctx, stream, "evil"))
	// The one bus API subject svc reaches is its own consumer's reset,
	// which answers as a reset and leaves the consumer's config alone.
	resp, err := svcConn.Request("$JS.bus.API.CONSUMER.RESET."+stream+"."+svcPub, createReq("evil"), natstest.Patience)
	require.NoError(t, err)
	var rr struct {
		Type   string `json:"type"`
		Config struct {
			DeliverSubject string `json:"deliver_subject"`
		} `json:"config"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &rr))
	assert.Equal(t, "io.nats.jetstream.api.v1.consumer_reset_response", rr.Type)
	assert.Equal(t, deliver, rr.Config.DeliverSubject)
	// A user limited to its account's $JS.API.> and _INBOX.> may not even
	// publish there.
	require.NoError(t, listenerConn.Publish("$JS.bus.API.CONSUMER.CREATE."+stream, createReq("evil")))
	require.NoError(t, listenerConn.Flush())
	select {
	case err := <-denied:
		assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	case <-time.After(natstest.Patience):
		t.Fatal("no permissions violation")
	}
	names := busStream.ListConsumers(ctx)
	var busConsumers []string
	for ci := range names.Info() {
		busConsumers = append(busConsumers, ci.Name)
	}
	require.NoError(t, names.Err())
	assert.Equal(t, []string{svcPub}, busConsumers, "the bus holds only the consumer it created")

	// Deleting svc's stream and creating it again resumes where the
	// consumer's ack floor is: the event published in between arrives,
	// the ones already acknowledged do not come again.
	ackFloor(5)
	require.NoError(t, svcJS.DeleteStream(ctx, stream))
	publish("e6")
	_, err = svcJS.CreateStream(ctx, svcStreamCfg)
	require.NoError(t, err)
	publish("e7")
	listen()
	receive(2)
	assert.Equal(t, []string{"session.created.e6=e6", "session.created.e7=e7"}, got)
	ackFloor(7)
	info, err := svcJS.Stream(ctx, stream)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), info.CachedInfo().State.Msgs)
	t.Logf("svc stream sources: %+v", info.CachedInfo().Sources[0])
}
