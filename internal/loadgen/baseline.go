package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// sampleKeys is how many keys of the sessions bucket are read to find the
// size of a session record (the largest value among them).
const sampleKeys = 64

// cleanupTimeout bounds the deletion of the baseline's bucket.
const cleanupTimeout = 30 * time.Second

// runBaseline measures kv.Get and kv.Put on a temporary bucket configured
// as the sessions bucket, with values the size of a session record, as
// two phases of the run's load, and deletes the bucket.
func (r *runner) runBaseline(ctx context.Context, b *Baseline) (_ *BaselineReport, err error) {
	js := b.JetStream
	sessions, err := js.KeyValue(ctx, b.Bucket)
	if err != nil {
		return nil, fmt.Errorf("loadgen: baseline: open bucket %q: %w", b.Bucket, err)
	}
	size, err := recordSize(ctx, sessions)
	if err != nil {
		return nil, fmt.Errorf("loadgen: baseline: sample bucket %q: %w", b.Bucket, err)
	}
	status, err := sessions.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("loadgen: baseline: bucket %q: %w", b.Bucket, err)
	}
	sc := status.Config()
	name := "bench_raw_" + r.fix.run[len("bench-"):]
	raw, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         name,
		Description:    "session-bus bench: raw KV baseline (temporary)",
		History:        sc.History,
		Storage:        sc.Storage,
		Replicas:       sc.Replicas,
		LimitMarkerTTL: sc.LimitMarkerTTL,
		Compression:    sc.Compression,
	})
	if err != nil {
		return nil, fmt.Errorf("loadgen: baseline: create bucket %s: %w", name, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if derr := js.DeleteKeyValue(dctx, name); derr != nil {
			err = errors.Join(err, fmt.Errorf("loadgen: baseline: delete bucket %s: %w", name, derr))
		}
	}()
	value := bytes.Repeat([]byte("v"), size)
	keys := r.cfg.Sessions
	key := func(i uint64) string { return "k" + strconv.FormatUint(i%uint64(keys), 10) }
	if err := r.setup(ctx, "raw KV values", keys, func(ctx context.Context, i int) error {
		_, err := raw.Put(ctx, key(uint64(i)), value)
		return err
	}); err != nil {
		return nil, err
	}
	rep := &BaselineReport{Bucket: name, Keys: keys, ValueBytes: size}
	for _, t := range []task{
		{name: "kv-get", class: Read, weight: 1, do: func(ctx context.Context, i uint64) error {
			_, err := raw.Get(ctx, key(i))
			return err
		}},
		{name: "kv-put", class: Write, weight: 1, do: func(ctx context.Context, i uint64) error {
			_, err := raw.Put(ctx, key(i), value)
			return err
		}},
	} {
		pr := r.runPhase(ctx, t.name, []task{t})
		rep.Rows = append(rep.Rows, pr.Rows...)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// recordSize is the largest value among the first sampleKeys keys of kv:
// a session record, beside the smaller index entries.
func recordSize(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = lister.Stop() }()
	size := 0
	n := 0
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted or expired since listed
		}
		if err != nil {
			return 0, err
		}
		size = max(size, len(e.Value()))
		if n++; n == sampleKeys {
			break
		}
	}
	if size == 0 {
		return 0, errors.New("no value found")
	}
	return size, nil
}
