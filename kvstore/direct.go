package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// Batched direct gets (nats-server 2.11+): one request to
// $JS.API.DIRECT.GET.<stream> with "multi_last" subjects, wildcards
// allowed, is answered with the last message of each matching subject,
// looked up in the server's subject index, then an end-of-batch status.
// The server reads under the stream's isolation lock, so the answer is one
// consistent view. Any replica may answer a direct get, so a replicated
// bucket does not use them (see read.go).

// maxDirectSubjects is how many subjects one batched direct get may match;
// past it the server answers 413 (nats-server v2.15.2, maxAllowedResponses).
const maxDirectSubjects = 1024

// Header and status values of direct get answers.
const (
	hdrSubject    = "Nats-Subject"
	hdrSequence   = "Nats-Sequence"
	hdrTimeStamp  = "Nats-Time-Stamp"
	hdrNumPending = "Nats-Num-Pending"
	hdrStatus     = "Status"
	hdrDesc       = "Description"

	statusEndOfBatch  = "204"
	statusNotFound    = "404"
	statusTooMany     = "413"
	statusNoResponder = "503"
)

// errDirectIncomplete: a batched direct get matched more subjects than one
// answer holds (413, or cut short by the server's byte bound). Callers fall
// back to a way without that bound.
var errDirectIncomplete = errors.New("kvstore: batched read incomplete")

// directReader sends batched direct gets to one stream and gathers their
// answers on one wildcard inbox subscription, as nats.go's request mux
// does for single replies: no subscription per request.
type directReader struct {
	nc      *nats.Conn
	subject string // <API prefix>DIRECT.GET.<stream>
	prefix  string // replies go to prefix + a call's token
	timeout time.Duration
	sub     *nats.Subscription

	mu    sync.Mutex
	next  uint64
	calls map[string]*directCall
}

// directCall is one request in flight: the messages received so far, and
// the status that ended it.
type directCall struct {
	msgs []*nats.Msg
	end  *nats.Msg
	done chan struct{}
}

func newDirectReader(js jetstream.JetStream, stream string) (*directReader, error) {
	nc := js.Conn()
	r := &directReader{
		nc:      nc,
		subject: apiPrefix(js.Options()) + "DIRECT.GET." + stream,
		prefix:  nc.NewInbox() + ".",
		timeout: js.Options().DefaultTimeout,
		calls:   make(map[string]*directCall),
	}
	sub, err := nc.Subscribe(r.prefix+"*", r.receive)
	if err != nil {
		return nil, fmt.Errorf("kvstore: subscribe for batched reads: %w", err)
	}
	r.sub = sub
	return r, nil
}

// receive files a message under its call. Runs on the subscription's one
// goroutine, so a call's messages arrive in order.
func (r *directReader) receive(m *nats.Msg) {
	token := strings.TrimPrefix(m.Subject, r.prefix)
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[token]
	if c == nil {
		return // given up on
	}
	if m.Header.Get(hdrSequence) == "" { // a status: end of batch, or why none
		c.end = m
		delete(r.calls, token)
		close(c.done)
		return
	}
	c.msgs = append(c.msgs, m)
}

// lastOf returns the last message of each subject matching filters, in
// stream order: none when nothing matches, errDirectIncomplete when the
// answer would not be complete.
func (r *directReader) lastOf(ctx context.Context, filters ...string) ([]*nats.Msg, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{filters})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	c := &directCall{done: make(chan struct{})}
	r.mu.Lock()
	r.next++
	token := strconv.FormatUint(r.next, 36)
	r.calls[token] = c
	r.mu.Unlock()
	if err := r.nc.PublishRequest(r.subject, r.prefix+token, req); err != nil {
		r.forget(token)
		return nil, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		r.forget(token)
		return nil, ctx.Err()
	}
	switch status := c.end.Header.Get(hdrStatus); status {
	case statusEndOfBatch:
		if np := c.end.Header.Get(hdrNumPending); np != "" && np != "0" {
			return nil, errDirectIncomplete // cut short by the server's byte bound
		}
		return c.msgs, nil
	case statusNotFound:
		return nil, nil
	case statusTooMany:
		return nil, errDirectIncomplete
	case statusNoResponder:
		return nil, bus.ErrUnavailable
	default:
		return nil, fmt.Errorf("batched read: status %s %s", status, c.end.Header.Get(hdrDesc))
	}
}

func (r *directReader) forget(token string) {
	r.mu.Lock()
	delete(r.calls, token)
	r.mu.Unlock()
}

// stop ends the subscription; calls in flight end with their context.
func (r *directReader) stop() { _ = r.sub.Unsubscribe() }

// rawMsg turns a direct get answer into the stored message it carries.
func rawMsg(m *nats.Msg) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("batched read: sequence: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
	if err != nil {
		return nil, fmt.Errorf("batched read: time stamp: %w", err)
	}
	return &jetstream.RawStreamMsg{Subject: m.Header.Get(hdrSubject), Sequence: seq, Header: m.Header, Data: m.Data, Time: t}, nil
}
