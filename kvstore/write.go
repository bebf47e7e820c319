package kvstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// ttlUntil returns the per-key TTL that keeps a key alive until at least
// expiresAt: whole seconds (the server's resolution), rounded up, at least 1 s.
// One call per operation, so a session and its index entries share one TTL.
func ttlUntil(expiresAt, now time.Time) time.Duration {
	d := expiresAt.Sub(now)
	secs := (d + time.Second - 1) / time.Second
	return max(secs, 1) * time.Second
}

// KV operation header and values, as nats.go's kv writes them.
const (
	kvOperation = "KV-Operation"
	kvOpDel     = "DEL"
	kvOpPurge   = "PURGE"
)

// tombstone reports whether a stored message ends its key: a delete, a
// purge, or the server's marker of an expired TTL.
func tombstone(h nats.Header) bool {
	return h.Get(kvOperation) != "" || h.Get(jetstream.MarkerReasonHeader) != ""
}

// write is one message to a key of the sessions bucket.
type write struct {
	key    string
	data   []byte
	header nats.Header
	ttl    time.Duration
	// expect, when set, is the revision the key (or expectKey) must be at.
	expect    *uint64
	expectKey string
	purge     bool
}

// msg is w as a message to publish, its conditions and TTL in headers, as
// jetstream's publish options would set them.
func (st *Store) msg(w write) *nats.Msg {
	m := nats.NewMsg(st.subjPre + w.key)
	m.Data = w.data
	for k, vs := range w.header {
		m.Header[k] = vs
	}
	if w.purge {
		m.Header.Set(kvOperation, kvOpPurge)
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	}
	if w.ttl > 0 {
		m.Header.Set(jetstream.MsgTTLHeader, w.ttl.String())
	}
	if w.expect != nil {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*w.expect, 10))
		if w.expectKey != "" {
			m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, st.subjPre+w.expectKey)
		}
	}
	return m
}

// publish writes w and returns the new revision. A lost compare-and-set is
// bus.ErrConflict.
func (st *Store) publish(ctx context.Context, w write) (uint64, error) {
	ack, err := st.js.PublishMsg(ctx, st.msg(w))
	if err != nil {
		if isWrongLastSeq(err) {
			return 0, fmt.Errorf("kvstore: write %q: %w", w.key, bus.ErrConflict)
		}
		return 0, fmt.Errorf("kvstore: write %q: %w", w.key, err)
	}
	return ack.Sequence, nil
}

// publishAll writes ws concurrently (one round trip, not len(ws)) and
// returns each write's revision and error.
func (st *Store) publishAll(ctx context.Context, ws ...write) ([]uint64, []error) {
	revs := make([]uint64, len(ws))
	errs := make([]error, len(ws))
	futures := make([]jetstream.PubAckFuture, len(ws))
	for i, w := range ws {
		futures[i], errs[i] = st.js.PublishMsgAsync(st.msg(w))
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			revs[i] = ack.Sequence
		case err := <-f.Err():
			if isWrongLastSeq(err) {
				err = bus.ErrConflict
			}
			errs[i] = fmt.Errorf("kvstore: write %q: %w", ws[i].key, err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("kvstore: write %q: %w", ws[i].key, ctx.Err())
		}
	}
	return revs, errs
}
