package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// deliveryKey holds the feed reader's last bus.Delivery. Only Delivered
// writes it (the event relay), and the relay resumes from it: never from a
// message someone else could have written.
const deliveryKey = "d.delivered"

// delivery is the last bus.Delivery a store has seen; known is false while
// no reader has reported one.
type delivery struct {
	bus.Delivery
	known bool
}

// deliveryWatch follows deliveryKey, so that every write knows how far the
// reader has delivered within milliseconds: a write whose predecessor is
// delivered starts its change log afresh (see changeLog.next).
type deliveryWatch struct {
	cur      atomic.Pointer[delivery]
	lastRead atomic.Int64 // unix nanoseconds of the last direct read (admit)
	watcher  jetstream.KeyWatcher
	done     chan struct{}
}

// watchDelivery starts the watch and waits for the current value.
func watchDelivery(ctx context.Context, kv jetstream.KeyValue) (*deliveryWatch, error) {
	w, err := kv.Watch(context.Background(), deliveryKey)
	if err != nil {
		return nil, fmt.Errorf("kvstore: watch delivery: %w", err)
	}
	dw := &deliveryWatch{watcher: w, done: make(chan struct{})}
	dw.cur.Store(&delivery{})
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("kvstore: watch delivery: %w", bus.ErrUnavailable)
			}
			if e == nil {
				initial = false // the current value, if any, is in
				break
			}
			dw.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, fmt.Errorf("kvstore: watch delivery: %w", ctx.Err())
		}
	}
	go func() {
		defer close(dw.done)
		for e := range w.Updates() {
			if e != nil {
				dw.apply(e)
			}
		}
	}()
	return dw, nil
}

func (dw *deliveryWatch) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var d bus.Delivery
	if json.Unmarshal(e.Value(), &d) != nil {
		return
	}
	dw.set(d)
}

// recheck reports whether a direct read of the delivery record is due: at
// most one a second.
func (dw *deliveryWatch) recheck(now time.Time) bool {
	last := dw.lastRead.Load()
	return now.UnixNano()-last >= int64(time.Second) && dw.lastRead.CompareAndSwap(last, now.UnixNano())
}

// set takes d unless a later delivery is known already.
func (dw *deliveryWatch) set(d bus.Delivery) {
	for {
		cur := dw.cur.Load()
		if cur.known && d.Position < cur.Position {
			return // a late report of a relay that was replaced
		}
		if dw.cur.CompareAndSwap(cur, &delivery{Delivery: d, known: true}) {
			return
		}
	}
}

func (dw *deliveryWatch) get() delivery { return *dw.cur.Load() }

func (dw *deliveryWatch) stop() {
	_ = dw.watcher.Stop()
	<-dw.done
}

// admit refuses a write while the reader lags further behind than the
// store can keep changes for (see recordTTL). Before any reader reports,
// every write is admitted. Before refusing, it reads the delivery record
// itself (at most once a second), in case the watch fell behind or died.
func (st *Store) admit(ctx context.Context, now time.Time) (delivery, error) {
	d := st.delivered.get()
	if !d.known || now.Sub(d.AsOf) <= st.maxEventLag {
		return d, nil
	}
	if st.delivered.recheck(now) {
		if fresh, ok, err := st.LastDelivered(ctx); err == nil && ok {
			st.delivered.set(fresh)
			d = st.delivered.get()
		}
	}
	if now.Sub(d.AsOf) > st.maxEventLag {
		return d, fmt.Errorf("%w: events are delivered up to %s ago (bound %s)", bus.ErrEventsBehind,
			now.Sub(d.AsOf).Round(time.Millisecond), st.maxEventLag)
	}
	return d, nil
}

// Delivered implements bus.ChangeFeed.
func (st *Store) Delivered(ctx context.Context, d bus.Delivery) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("kvstore: record delivery: %w", err)
	}
	if _, err := st.sessions.Put(ctx, deliveryKey, data); err != nil {
		return fmt.Errorf("kvstore: record delivery: %w", err)
	}
	return nil
}

// StartDelivery implements bus.ChangeFeed: a create of deliveryKey.
func (st *Store) StartDelivery(ctx context.Context, d bus.Delivery) (bus.Delivery, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return bus.Delivery{}, fmt.Errorf("kvstore: record delivery: %w", err)
	}
	_, err = st.sessions.Create(ctx, deliveryKey, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		cur, ok, err := st.LastDelivered(ctx)
		if err == nil && !ok {
			err = fmt.Errorf("kvstore: read delivery: %w", bus.ErrUnavailable) // created, then deleted
		}
		return cur, err
	}
	if err != nil {
		return bus.Delivery{}, fmt.Errorf("kvstore: record delivery: %w", err)
	}
	return d, nil
}

// LastDelivered implements bus.ChangeFeed.
func (st *Store) LastDelivered(ctx context.Context) (bus.Delivery, bool, error) {
	msg, err := st.liveMsg(ctx, deliveryKey)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return bus.Delivery{}, false, nil
	}
	if err != nil {
		return bus.Delivery{}, false, fmt.Errorf("kvstore: read delivery: %w", err)
	}
	var d bus.Delivery
	if err := json.Unmarshal(msg.Data, &d); err != nil {
		return bus.Delivery{}, false, fmt.Errorf("kvstore: read delivery: %w", err)
	}
	return d, true, nil
}
