package jsutil_test

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/jsutil"
	"github.com/session-bus/session-bus/internal/natstest"
)

// racers is how many processes open or create one bucket or stream at once.
const racers = 8

func TestOpenOrCreateKeyValue(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	ctx := natstest.Context(t)
	cfg := jetstream.KeyValueConfig{Bucket: "race", History: 1}

	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		js := natstest.JetStream(t, srv) // a connection each, as separate processes
		wg.Go(func() { _, errs[i] = jsutil.OpenOrCreateKeyValue(ctx, js, cfg) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "a racer lost")
	}

	js := natstest.JetStream(t, srv)
	kv, err := jsutil.OpenOrCreateKeyValue(ctx, js, cfg)
	require.NoError(t, err)
	_, err = kv.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	other, err := jsutil.OpenOrCreateKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "race", History: 5})
	require.NoError(t, err, "an existing bucket opens whatever the config")
	e, err := other.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(e.Value()), "the same bucket, not a new one")

	_, err = jsutil.OpenOrCreateKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "bad.name"})
	require.Error(t, err, "a create error is returned")
}

func TestOpenOrCreateStream(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	ctx := natstest.Context(t)
	cfg := jetstream.StreamConfig{Name: "RACE", Subjects: []string{"race.>"}}

	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		js := natstest.JetStream(t, srv)
		wg.Go(func() { _, errs[i] = jsutil.OpenOrCreateStream(ctx, js, cfg) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "a racer lost")
	}

	js := natstest.JetStream(t, srv)
	_, err := js.Publish(ctx, "race.1", []byte("x"))
	require.NoError(t, err)
	s, err := jsutil.OpenOrCreateStream(ctx, js, jetstream.StreamConfig{Name: "RACE", Subjects: []string{"other.>"}})
	require.NoError(t, err, "an existing stream opens whatever the config")
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), info.State.Msgs, "the same stream, not a new one")
	assert.Equal(t, []string{"race.>"}, info.Config.Subjects)

	_, err = jsutil.OpenOrCreateStream(ctx, js, jetstream.StreamConfig{Name: "BAD", Subjects: []string{"race.>"}})
	require.Error(t, err, "a create error (overlapping subjects) is returned")
}
