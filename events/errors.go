package events

import "errors"

var (
	// ErrInvalidConfig: a config field or option is out of range.
	ErrInvalidConfig = errors.New("events: invalid config")
	// ErrNoStream: the events stream does not exist yet; a [Relay] creates it.
	ErrNoStream = errors.New("events: events stream not found")
	// ErrBadEvent: a message on the events stream is not a valid event.
	ErrBadEvent = errors.New("events: bad event")
	// ErrClosed: the relay or listener was closed.
	ErrClosed = errors.New("events: closed")
)
