package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/internal/jsutil"
)

// lease makes one relay of many the active one. It is a key in a KV bucket
// whose MaxAge is the lease TTL: the holder rewrites it (compare-and-set)
// every TTL/3; when the holder dies the key ages out and a standby creates
// it. The lease only saves work: correctness under overlap (a paused holder
// that has not noticed its loss) comes from event-id de-duplication and
// in-order publishing, see doc.go.
type lease struct {
	kv  jetstream.KeyValue
	key string
	id  string
	ttl time.Duration
	rev uint64 // held revision; 0 when not held
	at  time.Time
}

func openLease(ctx context.Context, js jetstream.JetStream, bucket, key string, ttl time.Duration, replicas int) (*lease, error) {
	kv, err := jsutil.OpenOrCreateKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "session-bus relay leases",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("events: open lease bucket %q: %w", bucket, err)
	}
	return &lease{kv: kv, key: key, id: uuid.NewString(), ttl: ttl}, nil
}

// acquire tries to take the lease; false means another relay holds it.
func (l *lease) acquire(ctx context.Context) (bool, error) {
	rev, err := l.kv.Create(ctx, l.key, []byte(l.id))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("events: acquire lease: %w", err)
	}
	l.rev, l.at = rev, time.Now()
	return true, nil
}

// renew extends a held lease. errLeaseLost means another relay took it, or
// it could not be renewed within its TTL.
func (l *lease) renew(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, l.key, []byte(l.id), l.rev)
	if err == nil {
		l.rev, l.at = rev, time.Now()
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errLeaseLost
	}
	if time.Since(l.at) >= l.ttl {
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return err
}

// release gives up a held lease so a standby takes over at once.
func (l *lease) release(ctx context.Context) {
	if l.rev == 0 {
		return
	}
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	l.rev = 0
}

var errLeaseLost = errors.New("events: relay lease lost")
