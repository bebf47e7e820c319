// Package jsutil holds the JetStream helpers that several packages share.
package jsutil

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// OpenOrCreateKeyValue returns the bucket cfg names, creating it with cfg
// when it does not exist. When another process creates it at the same
// time, it opens theirs. An existing bucket is returned as it is, even
// when its config differs from cfg. Errors are jetstream's, unwrapped.
func OpenOrCreateKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return openOrCreate(
		func() (jetstream.KeyValue, error) { return js.KeyValue(ctx, cfg.Bucket) },
		func() (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, cfg) },
		jetstream.ErrBucketNotFound, jetstream.ErrBucketExists)
}

// OpenOrCreateStream returns the stream cfg names, creating it with cfg
// when it does not exist. When another process creates it at the same
// time, it opens theirs. An existing stream is returned as it is, even
// when its config differs from cfg. Errors are jetstream's, unwrapped.
func OpenOrCreateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return openOrCreate(
		func() (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) },
		func() (jetstream.Stream, error) { return js.CreateStream(ctx, cfg) },
		jetstream.ErrStreamNotFound, jetstream.ErrStreamNameAlreadyInUse)
}

// openOrCreate opens; when that fails with notFound it creates; when that
// fails with exists (a creator won the race) it opens again.
func openOrCreate[T any](open, create func() (T, error), notFound, exists error) (T, error) {
	v, err := open()
	if !errors.Is(err, notFound) {
		return v, err
	}
	v, err = create()
	if !errors.Is(err, exists) {
		return v, err
	}
	return open()
}
