package kvstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// The feed reads the sessions bucket's own stream: a session record write
// is a change (its headers say which, changes.go), a login index entry's
// expiry marker is the session's expiry (it names the login; the record's
// own marker does not). Index rewrites, purges and markers of other keys
// announce nothing.

// Feed tuning: how many messages one Next returns at most, how long it
// waits before reporting a quiet spell, how many messages wait read ahead,
// and how many sessions a cursor remembers to drop changes it yielded.
const (
	feedBatch    = bus.MaxChangeBatch
	feedQuiet    = time.Second
	feedReadMore = 4096
	feedSeen     = 100_000
)

// Server marker header and the reason it gives when a key's TTL ends.
const (
	markerReasonMaxAge = "MaxAge"
)

// Head implements bus.ChangeFeed: the last sequence of the bucket's stream.
func (st *Store) Head(ctx context.Context) (uint64, error) {
	info, err := st.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("kvstore: read head: %w", err)
	}
	return info.State.LastSeq, nil
}

// Follow implements bus.ChangeFeed with an ordered consumer of the bucket's
// stream from after+1.
func (st *Store) Follow(ctx context.Context, after uint64) (bus.ChangeCursor, error) {
	cons, err := st.js.OrderedConsumer(ctx, st.stream.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{st.subjPre + prefixSession + ">", st.subjPre + prefixLogin + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: follow changes: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("kvstore: follow changes: %w", err)
	}
	c := &cursor{st: st, cons: cons, it: it, msgs: make(chan jetstream.Msg, feedReadMore), done: make(chan struct{}),
		through: after, asOf: time.Now(), floor: after, seen: make(map[string]uint64)}
	go c.pump()
	return c, nil
}

// cursor yields the changes of the bucket's stream after a position.
type cursor struct {
	st   *Store
	cons jetstream.Consumer
	it   jetstream.MessagesContext
	msgs chan jetstream.Msg
	done chan struct{} // closed when pump stops; err says why
	err  error

	through uint64
	asOf    time.Time
	// seen is, per session, the last change yielded: a log repeats
	// changes the cursor may have yielded from their own revision. floor:
	// a session not in seen may have had its changes up to floor yielded
	// (before the cursor, or before seen last started over): those are
	// marked Repeat.
	seen  map[string]uint64
	floor uint64
}

func (c *cursor) pump() {
	defer close(c.done)
	for {
		msg, err := c.it.Next()
		if err != nil {
			c.err = err
			return
		}
		c.msgs <- msg // Stop unblocks this by draining (see Stop)
	}
}

// Next implements bus.ChangeCursor.
func (c *cursor) Next(ctx context.Context) (bus.ChangeBatch, error) {
	quiet := time.NewTimer(feedQuiet)
	defer quiet.Stop()
	var b bus.ChangeBatch
	select {
	case <-ctx.Done():
		return b, ctx.Err()
	case <-c.done:
		return b, c.pumpErr()
	case <-quiet.C:
		// Nothing arrived. Caught up, unless the consumer stalled with
		// changes pending: then the lag stays what it was.
		if info, err := c.cons.Info(ctx); err == nil && info.NumPending == 0 && len(c.msgs) == 0 {
			c.asOf = time.Now()
		}
		return bus.ChangeBatch{Through: c.through, AsOf: c.asOf}, nil
	case msg := <-c.msgs:
		b.Changes = c.add(b.Changes, msg)
	}
more:
	for n := 1; n < feedBatch; n++ {
		select {
		case msg := <-c.msgs:
			b.Changes = c.add(b.Changes, msg)
		default:
			break more
		}
	}
	b.Through, b.AsOf = c.through, c.asOf
	return b, nil
}

func (c *cursor) pumpErr() error {
	if errors.Is(c.err, jetstream.ErrMsgIteratorClosed) {
		return fmt.Errorf("kvstore: follow changes: %w", bus.ErrUnavailable)
	}
	return fmt.Errorf("kvstore: follow changes: %w: %w", bus.ErrUnavailable, c.err)
}

// add appends the changes msg yields and moves the cursor past it.
func (c *cursor) add(out []bus.ChangeRecord, msg jetstream.Msg) []bus.ChangeRecord {
	md, err := msg.Metadata()
	if err != nil {
		return out // not a stream message
	}
	seq := md.Sequence.Stream
	c.through = seq
	if md.NumPending == 0 {
		c.asOf = time.Now()
	} else {
		c.asOf = md.Timestamp
	}
	for _, r := range c.st.decodeChange(msg.Subject(), seq, md.Timestamp, msg.Headers(), msg.Data()) {
		last, ok := c.seen[r.SessionID]
		if ok && r.Seq <= last {
			continue // yielded from its own revision already
		}
		r.Repeat = !ok && r.Seq <= c.floor
		if !ok && len(c.seen) >= feedSeen {
			clear(c.seen)
			c.floor = seq - 1
		}
		c.seen[r.SessionID] = r.Seq
		out = append(out, r)
	}
	return out
}

// Stop implements bus.ChangeCursor.
func (c *cursor) Stop() {
	c.it.Stop()
	for {
		select {
		case <-c.msgs:
		case <-c.done:
			return
		}
	}
}

// decodeChange returns the changes one message of the bucket's stream
// records, oldest first: the changes in its log, then its own.
func (st *Store) decodeChange(subject string, seq uint64, t time.Time, h nats.Header, data []byte) []bus.ChangeRecord {
	key, ok := strings.CutPrefix(subject, st.subjPre)
	if !ok {
		return nil
	}
	t = t.UTC()
	switch {
	case strings.HasPrefix(key, prefixLogin):
		// Only the server's expiry marker of a login index entry counts.
		if h.Get(jetstream.MarkerReasonHeader) != markerReasonMaxAge {
			return nil
		}
		login, id, found := strings.Cut(strings.TrimPrefix(key, prefixLogin), ".")
		raw, err := base64.RawURLEncoding.DecodeString(login)
		if !found || err != nil || bus.ValidateSessionID(id) != nil {
			return nil
		}
		return []bus.ChangeRecord{{Seq: seq, Time: t, Op: bus.OpExpired, SessionID: id, LoginID: string(raw)}}
	case strings.HasPrefix(key, prefixSession):
		id := strings.TrimPrefix(key, prefixSession)
		if bus.ValidateSessionID(id) != nil || h.Get(jetstream.MarkerReasonHeader) != "" {
			return nil
		}
		r := bus.ChangeRecord{Seq: seq, Time: t, Op: bus.ChangeOp(h.Get(headerOp)), SessionID: id, ServiceID: h.Get(headerService)}
		switch r.Op {
		case bus.OpCreated, bus.OpRefreshed, bus.OpUpdated:
			var body struct {
				SessionID string `json:"session_id"`
				LoginID   string `json:"login_id"`
			}
			if json.Unmarshal(data, &body) != nil || body.SessionID != id {
				return nil
			}
			r.LoginID = body.LoginID
			if keys := h.Get(headerKeys); keys != "" && (r.Op == bus.OpUpdated || r.Op == bus.OpCreated) {
				_ = json.Unmarshal([]byte(keys), &r.Keys) // keys are informative
			}
		case bus.OpDeleted:
			raw, err := base64.RawURLEncoding.DecodeString(h.Get(headerLogin))
			if err != nil {
				return nil
			}
			r.LoginID, r.Reason = string(raw), h.Get(headerReason)
		default:
			return nil
		}
		return append(logRecords(h.Get(headerLog), seq, id, r.LoginID), r)
	}
	return nil
}
