package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/session-bus/session-bus/bus"
)

// Defaults, set here and only here.
const (
	// DefaultServiceID is the caller id used without [WithServiceID]. A bus
	// behind server-enforced permissions refuses it unless a NATS user of
	// that name is allowed.
	DefaultServiceID = "anonymous"
	// DefaultTimeout bounds a call whose ctx has no deadline.
	DefaultTimeout = 5 * time.Second
)

// Client calls a session bus over NATS. Create one with [New].
type Client struct {
	nc        *nats.Conn
	serviceID string
	timeout   time.Duration
	perms     *permWatch
	cache     *clientCache // nil without WithCache
}

var _ bus.Sessions = (*Client)(nil)

type options struct {
	serviceID string
	timeout   time.Duration
	cache     *CacheConfig
}

// Option configures a [Client].
type Option func(*options) error

// WithServiceID sets the acting service: the last token of every request
// subject, and the id the bus records on the changes this client makes.
// It must pass bus.ValidateServiceID. Default [DefaultServiceID].
func WithServiceID(id string) Option {
	return func(o *options) error {
		if err := bus.ValidateServiceID(id); err != nil {
			return fmt.Errorf("%w: %w", bus.ErrInvalidConfig, err)
		}
		o.serviceID = id
		return nil
	}
}

// WithTimeout bounds calls whose ctx has no deadline. Default
// [DefaultTimeout].
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout must be positive", bus.ErrInvalidConfig)
		}
		o.timeout = d
		return nil
	}
}

// New returns a Client that calls the bus over nc. It installs an async
// error handler on nc, chained to the one already set, so that it learns
// of permission violations at once. A micro service on the same connection
// restores its predecessor's handler when it stops, so create the Client
// before any micro service on nc, or give each its own connection.
// Errors: bus.ErrInvalidConfig.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", bus.ErrInvalidConfig)
	}
	o := options{serviceID: DefaultServiceID, timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	c := &Client{
		nc:        nc,
		serviceID: o.serviceID,
		timeout:   o.timeout,
		perms:     watchPermissions(nc),
	}
	if o.cache != nil {
		cc, err := newClientCache(c, *o.cache)
		if err != nil {
			return nil, err
		}
		c.cache = cc
	}
	return c, nil
}

// ServiceID returns the acting service the client names in its subjects.
func (c *Client) ServiceID() string { return c.serviceID }

// call sends req to method and decodes the reply into resp (when not nil).
func (c *Client) call(ctx context.Context, method bus.Method, req, resp any) error {
	subject, err := bus.MethodSubject(method, c.serviceID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: %s: encode request: %w", bus.ErrInvalidInput, method, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	// The server refused this before on this connection: fail at once
	// instead of waiting for a timeout (a reconnect clears the memory).
	if c.perms.deniedEarlier(subject) {
		return fmt.Errorf("%w: %s: refused earlier on this connection", bus.ErrPermissionDenied, method)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer c.perms.add(subject, cancel)()

	msg, err := c.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		return c.transportErr(ctx, method, subject, err)
	}
	if status := msg.Header.Get(micro.ErrorCodeHeader); status != "" {
		return replyErr(method, status, msg)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("%w: %s: decode reply: %w", bus.ErrInternal, method, err)
	}
	return nil
}

// transportErr maps a failed request to a bus sentinel.
func (c *Client) transportErr(ctx context.Context, method bus.Method, subject string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, bus.ErrPermissionDenied) {
		return cause
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %s: no bus is serving %s", bus.ErrUnavailable, method, subject)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %s: %w", bus.ErrTooLarge, method, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		// A violation reported before this call began was not seen by it.
		if c.perms.deniedEarlier(subject) {
			return fmt.Errorf("%w: %s: publish to %s", bus.ErrPermissionDenied, method, subject)
		}
	}
	return fmt.Errorf("%w: %s: %w", bus.ErrUnavailable, method, err)
}

// replyErr rebuilds the bus error of an error reply, so that errors.Is
// and even Error() match the in-process ones.
func replyErr(method bus.Method, status string, msg *nats.Msg) error {
	var body bus.ErrorReply
	if err := json.Unmarshal(msg.Data, &body); err != nil || body.Error.Code == "" {
		return fmt.Errorf("%w: %s: %s %s", errorForStatus(status), method, status, msg.Header.Get(micro.ErrorHeader))
	}
	sentinel := bus.ErrorForCode(body.Error.Code)
	if errors.Is(sentinel, bus.ErrInternal) && body.Error.Code != bus.CodeOf(bus.ErrInternal).Name {
		sentinel = errorForStatus(status) // a code newer than this client
	}
	// The message starts with the sentinel's sentence (bus.ErrorMessage),
	// or, from older buses, with its whole text ("bus: ...").
	for _, head := range []string{bus.ErrorMessage(sentinel), sentinel.Error()} {
		rest, ok := strings.CutPrefix(body.Error.Message, head)
		if ok && (rest == "" || rest[0] == ':' || rest[0] == ' ') {
			return fmt.Errorf("%w%s", sentinel, rest)
		}
	}
	return fmt.Errorf("%w: %s", sentinel, body.Error.Message)
}

// errorForStatus maps a bare HTTP-like status to the widest sentinel
// (bus's table).
func errorForStatus(status string) error {
	n, _ := strconv.Atoi(status)
	return bus.ErrorForStatus(n)
}
