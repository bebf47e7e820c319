package kvstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/jsutil"
)

// Config says which buckets the store uses and how they are created when
// missing.
type Config struct {
	// Bucket holds sessions and their index entries. Default "sessions".
	Bucket string
	// ServicesBucket holds service records. Default "session-bus-services".
	ServicesBucket string
	// Replicas of each bucket: 1 on a single server, 3 on a cluster. Default 1.
	Replicas int
	// Storage is file or memory. Default file.
	Storage jetstream.StorageType
	// MarkerTTL is how long expiry and delete markers are kept: long enough
	// for a change-stream relay that was down to catch up. Default 1 h.
	MarkerTTL time.Duration
	// OrphanGrace bounds how long a create may take between its index
	// writes and its record write (it gives up past half of it). A token
	// index entry older than this whose session was never written is a
	// crash's leftover, and a new create of the same token takes it over.
	// Clocks of bus processes and NATS servers must agree within half of
	// it. Default 10 s.
	OrphanGrace time.Duration
	// MaxEventLag is how far behind the change feed's reader (the event
	// relay) may fall before writes are refused with bus.ErrEventsBehind:
	// shorter than the shortest idle timeout and than MarkerTTL, since a
	// session that ends, and a delete marker that expires, while its
	// change is not delivered takes the change with it. Default 30 s.
	MaxEventLag time.Duration
}

// DefaultConfig returns the defaults stated on each [Config] field.
func DefaultConfig() Config {
	return Config{
		Bucket:         "sessions",
		ServicesBucket: "session-bus-services",
		Replicas:       1,
		Storage:        jetstream.FileStorage,
		MarkerTTL:      time.Hour,
		OrphanGrace:    10 * time.Second,
		MaxEventLag:    30 * time.Second,
	}
}

func (c Config) validate() error {
	switch {
	case c.Bucket == "" || c.ServicesBucket == "" || c.Bucket == c.ServicesBucket:
		return fmt.Errorf("%w: two distinct bucket names are required", ErrInvalidConfig)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas must be 1..5", ErrInvalidConfig)
	case c.MarkerTTL < time.Second:
		return fmt.Errorf("%w: marker TTL must be at least 1s", ErrInvalidConfig)
	case c.OrphanGrace < 100*time.Millisecond:
		return fmt.Errorf("%w: orphan grace must be at least 100ms", ErrInvalidConfig)
	case c.MaxEventLag < time.Second:
		return fmt.Errorf("%w: max event lag must be at least 1s", ErrInvalidConfig)
	}
	return nil
}

// Store is a bus.Store on JetStream KeyValue.
type Store struct {
	js        jetstream.JetStream
	sessions  jetstream.KeyValue
	stream    jetstream.Stream // the sessions bucket's stream, for reads with headers
	services  jetstream.KeyValue
	subjPre   string // "$KV.<bucket>."
	markerTTL time.Duration
	// orphanGrace: see Config.OrphanGrace.
	orphanGrace time.Duration
	// leaderReads sends reads to the stream leader (replicated buckets;
	// see read.go); servicesBucket names the services bucket for them.
	leaderReads    bool
	servicesBucket string
	records        recordCache
	// direct sends batched direct gets (list.go); nil on a replicated
	// bucket, whose followers may answer them.
	direct *directReader
	// atomicCreate: creates are one atomic batch (batch.go); cleared
	// if the stream turns out to refuse them.
	atomicCreate atomic.Bool
	// delivered follows how far the change feed's reader has delivered;
	// maxEventLag: see Config.MaxEventLag.
	delivered   *deliveryWatch
	maxEventLag time.Duration
	closeOnce   sync.Once
}

var (
	_ bus.Store      = (*Store)(nil)
	_ bus.ChangeFeed = (*Store)(nil)
)

// New opens the store's buckets, creating them when missing. An existing
// sessions bucket that cannot honour per-key TTLs is refused with
// [ErrBucketNoTTL] rather than run without expiry.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sessions, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "session-bus sessions",
		// One revision per key: with more, the server (v2.15.2, measured)
		// stops expiring keys by their per-message TTL. Changes the event
		// relay has not read yet survive in the change log header instead.
		History:        1,
		Storage:        cfg.Storage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: cfg.MarkerTTL,
	})
	if err != nil {
		return nil, err
	}
	stream, err := checkTTLSupport(ctx, js, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	services, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.ServicesBucket,
		Description: "session-bus service credentials",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	atomicCreate := useAtomicCreate(cfg) && allowAtomicPublish(ctx, js, stream)
	var direct *directReader
	if cfg.Replicas == 1 && stream.CachedInfo().Config.AllowDirect {
		if direct, err = newDirectReader(js, stream.CachedInfo().Config.Name); err != nil {
			return nil, err
		}
	}
	delivered, err := watchDelivery(ctx, sessions)
	if err != nil {
		if direct != nil {
			direct.stop()
		}
		return nil, err
	}
	st := &Store{
		direct:         direct,
		delivered:      delivered,
		maxEventLag:    cfg.MaxEventLag,
		js:             js,
		sessions:       sessions,
		stream:         stream,
		services:       services,
		subjPre:        "$KV." + cfg.Bucket + ".",
		markerTTL:      cfg.MarkerTTL,
		orphanGrace:    cfg.OrphanGrace,
		leaderReads:    cfg.Replicas > 1,
		servicesBucket: cfg.ServicesBucket,
		records:        newRecordCache(),
	}
	st.atomicCreate.Store(atomicCreate)
	return st, nil
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := jsutil.OpenOrCreateKeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open bucket %q: %w", cfg.Bucket, err)
	}
	return kv, nil
}

func checkTTLSupport(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, StreamName(bucket))
	if err != nil {
		return nil, fmt.Errorf("kvstore: stream of bucket %q: %w", bucket, err)
	}
	cfg := st.CachedInfo().Config
	if !cfg.AllowMsgTTL || cfg.SubjectDeleteMarkerTTL <= 0 {
		return nil, fmt.Errorf("%w: bucket %q: recreate it with LimitMarkerTTL, or name another bucket", ErrBucketNoTTL, bucket)
	}
	return st, nil
}

// Close stops the store's watch of the feed reader's delivery and its
// subscription for batched reads. The store
// must not be used after. Safe to call twice.
func (st *Store) Close() {
	st.closeOnce.Do(func() {
		st.delivered.stop()
		if st.direct != nil {
			st.direct.stop()
		}
	})
}

// StreamName returns the JetStream stream behind a KV bucket: the change
// stream that events are derived from.
func StreamName(bucket string) string { return "KV_" + bucket }

// Bucket returns the sessions bucket, for tests and tools that read it raw.
func (st *Store) Bucket() jetstream.KeyValue { return st.sessions }

// ServicesBucket returns the service records bucket.
func (st *Store) ServicesBucket() jetstream.KeyValue { return st.services }

// JetStream returns the JetStream context the store writes through.
func (st *Store) JetStream() jetstream.JetStream { return st.js }
