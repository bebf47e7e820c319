package events

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TailOptions selects the events [Tail] prints.
type TailOptions struct {
	// Types to show. Default: every type.
	Types []Type
	// LoginID, when set, shows only that login's events.
	LoginID string
	// Since shows stored events from that time on first. Default: only
	// events published from now on.
	Since time.Time
	// Stream is the events stream. Default "SESSION_EVENTS".
	Stream string
}

// Tail calls fn for every event that matches opts, in stream order, one
// call at a time, until ctx ends; then it returns nil. It is what
// `session-bus events tail` runs. Errors: [ErrNoStream], [ErrInvalidConfig],
// or why the stream stopped delivering.
func Tail(ctx context.Context, js jetstream.JetStream, opts TailOptions, fn func(Event)) error {
	var lo []ListenOption
	if len(opts.Types) > 0 {
		lo = append(lo, WithTypes(opts.Types...))
	}
	if opts.LoginID != "" {
		lo = append(lo, WithLogin(opts.LoginID))
	}
	if !opts.Since.IsZero() {
		lo = append(lo, WithStartTime(opts.Since))
	}
	if opts.Stream != "" {
		lo = append(lo, WithStream(opts.Stream))
	}
	l, err := Broadcast(ctx, js, func(_ context.Context, ev Event) error {
		fn(ev)
		return nil
	}, lo...)
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	select {
	case <-ctx.Done():
		return nil
	case <-l.Done():
		return l.Err()
	}
}
