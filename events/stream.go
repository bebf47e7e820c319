package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/internal/jsutil"
)

// StreamConfig says how the events stream is created when missing. An
// existing stream is used as it is.
type StreamConfig struct {
	// Name of the stream. Default "SESSION_EVENTS".
	Name string
	// MaxAge is how long events are kept: how long a durable listener may
	// be down without missing any. Default 24 h.
	MaxAge time.Duration
	// Duplicates is the de-duplication window on event ids: longer than a
	// relay can take to fail over. Default 10 min.
	Duplicates time.Duration
	// Replicas: 1 on a single server, 3 on a cluster. Default 1.
	Replicas int
	// Storage is file or memory. Default file.
	Storage jetstream.StorageType
}

// DefaultStreamConfig returns the defaults stated on each [StreamConfig] field.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		Name:       "SESSION_EVENTS",
		MaxAge:     24 * time.Hour,
		Duplicates: 10 * time.Minute,
		Replicas:   1,
		Storage:    jetstream.FileStorage,
	}
}

func (c StreamConfig) validate() error {
	switch {
	case !validToken(c.Name):
		return fmt.Errorf("%w: stream name %q", ErrInvalidConfig, c.Name)
	case c.MaxAge < time.Minute:
		return fmt.Errorf("%w: max age must be at least 1m", ErrInvalidConfig)
	case c.Duplicates < time.Second || c.Duplicates > c.MaxAge:
		return fmt.Errorf("%w: duplicates window must be 1s..max age", ErrInvalidConfig)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas must be 1..5", ErrInvalidConfig)
	}
	return nil
}

// EnsureStream creates the events stream (subjects session.>) when missing
// and returns it. Most callers want [NewRelay], which calls it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "session-bus change events",
		Subjects:    []string{SubjectAll},
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := jsutil.OpenOrCreateStream(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: open stream %q: %w", cfg.Name, err)
	}
	return s, nil
}

// openStream returns an existing stream or ErrNoStream.
func openStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNoStream, name)
	}
	if err != nil {
		return nil, fmt.Errorf("events: open stream %q: %w", name, err)
	}
	return s, nil
}
