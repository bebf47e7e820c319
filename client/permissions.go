package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// The NATS server answers a publish it refuses with an -ERR that nats.go
// passes only to the connection's async error handler (and LastError); a
// request to a refused subject would otherwise wait for its timeout. The
// watch turns such an error into the failure of the calls waiting on it.
var (
	publishDeniedRe   = regexp.MustCompile(`Publish to "([^"]+)"`)
	replyDeniedRe     = regexp.MustCompile(`Publish with Reply of "([^"]+)"`)
	subscribeDeniedRe = regexp.MustCompile(`Subscription to "([^"]+)"`)
)

// maxDenied bounds the subjects remembered as refused.
const maxDenied = 1024

// permWatch tracks the calls in flight by subject and fails them when the
// server reports a permission violation that concerns them.
type permWatch struct {
	inbox string // the connection's inbox prefix, with a trailing dot

	mu      sync.Mutex
	next    uint64
	pending map[string]map[uint64]context.CancelCauseFunc
	denied  map[string]struct{}
}

// watchPermissions chains a watch in front of nc's async error handler.
func watchPermissions(nc *nats.Conn) *permWatch {
	prefix := nc.Opts.InboxPrefix
	if prefix == "" {
		prefix = nats.InboxPrefix
	}
	w := &permWatch{
		inbox:   strings.TrimSuffix(prefix, ".") + ".",
		pending: map[string]map[uint64]context.CancelCauseFunc{},
		denied:  map[string]struct{}{},
	}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		w.onError(err)
		if prev != nil {
			prev(c, sub, err)
		}
	})
	// A reconnect may come with other permissions (a renewed login): what
	// was refused before is tried again.
	prevReconnect := nc.ReconnectHandler()
	nc.SetReconnectHandler(func(c *nats.Conn) {
		w.forget()
		if prevReconnect != nil {
			prevReconnect(c)
		}
	})
	return w
}

func (w *permWatch) forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.denied)
}

// add registers a call on subject and returns its deregistration.
func (w *permWatch) add(subject string, cancel context.CancelCauseFunc) func() {
	w.mu.Lock()
	id := w.next
	w.next++
	calls := w.pending[subject]
	if calls == nil {
		calls = map[uint64]context.CancelCauseFunc{}
		w.pending[subject] = calls
	}
	calls[id] = cancel
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(calls, id)
		if len(calls) == 0 { // calls is still w.pending[subject]: it held id until now
			delete(w.pending, subject)
		}
		w.mu.Unlock()
	}
}

// deniedEarlier reports whether the server has refused a publish to
// subject, or the subscription to the reply inbox, on this connection.
func (w *permWatch) deniedEarlier(subject string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.denied[subject]
	_, inbox := w.denied[inboxDenied]
	return ok || inbox
}

// inboxDenied is the denied-set key of a refused reply inbox.
const inboxDenied = ""

func (w *permWatch) onError(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	text := err.Error()
	if m := publishDeniedRe.FindStringSubmatch(text); m != nil {
		w.fail(m[1], fmt.Errorf("%w: publish to %q", bus.ErrPermissionDenied, m[1]))
		return
	}
	// Without the right to receive on its inbox no call can get a reply.
	for _, re := range []*regexp.Regexp{replyDeniedRe, subscribeDeniedRe} {
		if m := re.FindStringSubmatch(text); m != nil && strings.HasPrefix(m[1], w.inbox) {
			w.fail("", fmt.Errorf("%w: replies on %q", bus.ErrPermissionDenied, m[1]))
			return
		}
	}
}

// fail cancels the calls on subject, or every call when subject is "".
func (w *permWatch) fail(subject string, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.denied) >= maxDenied {
		clear(w.denied)
	}
	w.denied[subject] = struct{}{} // "" (inboxDenied): every call
	for subj, calls := range w.pending {
		if subject != "" && subj != subject {
			continue
		}
		for _, cancel := range calls {
			cancel(cause)
		}
	}
}
