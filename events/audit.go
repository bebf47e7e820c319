package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// AccessRecord says that a service read a session it did not create: the
// bus's [bus.AccessEvent]. It is an audit record, not a change event: it
// goes to its own subject space (sessionaudit.accessed.<session id>) and
// stream, so listeners of session.> are not flooded by reads.
type AccessRecord = bus.AccessEvent

// AuditConfig configures an [Auditor].
type AuditConfig struct {
	// Stream holds the audit records, subjects sessionaudit.>; created when
	// missing. Default "SESSION_AUDIT".
	Stream string
	// MaxAge is how long records are kept. Default 7 days.
	MaxAge time.Duration
	// MaxBytes bounds the stream; past it the oldest records go, so a
	// flood of audited events cannot fill the disk. Default 256 MiB.
	MaxBytes int64
	// Replicas: 1 on a single server, 3 on a cluster. Default 1.
	Replicas int
}

// DefaultAuditConfig returns the defaults stated on each [AuditConfig] field.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{Stream: "SESSION_AUDIT", MaxAge: 7 * 24 * time.Hour, MaxBytes: 256 << 20, Replicas: 1}
}

// Auditor records session accesses. It is opt-in: the bus calls
// [Auditor.Record] on reads by a service other than the creator. It is
// safe for concurrent use.
type Auditor struct {
	js     jetstream.JetStream
	stream string
}

// NewAuditor creates the audit stream when missing. Errors: [ErrInvalidConfig].
func NewAuditor(ctx context.Context, js jetstream.JetStream, cfg AuditConfig) (*Auditor, error) {
	switch {
	case !validToken(cfg.Stream):
		return nil, fmt.Errorf("%w: audit stream name %q", ErrInvalidConfig, cfg.Stream)
	case cfg.MaxAge < time.Minute:
		return nil, fmt.Errorf("%w: audit max age must be at least 1m", ErrInvalidConfig)
	case cfg.MaxBytes < 1<<20:
		return nil, fmt.Errorf("%w: audit max bytes must be at least 1 MiB", ErrInvalidConfig)
	case cfg.Replicas < 1 || cfg.Replicas > 5:
		return nil, fmt.Errorf("%w: replicas must be 1..5", ErrInvalidConfig)
	}
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "session-bus access audit",
		Subjects:    []string{AuditSubjectAll},
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	if cur := s.CachedInfo().Config; cur.MaxBytes != cfg.MaxBytes {
		// A stream made before the bound (or with another one) gets it.
		cur.MaxBytes, cur.Discard = cfg.MaxBytes, jetstream.DiscardOld
		if _, err := js.UpdateStream(ctx, cur); err != nil {
			return nil, fmt.Errorf("events: bound audit stream %q: %w", cfg.Stream, err)
		}
	}
	return &Auditor{js: js, stream: cfg.Stream}, nil
}

// Record stores rec; a zero Time is set to now. Errors: [ErrInvalidConfig]
// for a session id that cannot be a subject token, or the publish error.
func (a *Auditor) Record(ctx context.Context, rec AccessRecord) error {
	m, err := accessMsg(rec)
	if err != nil {
		return err
	}
	if _, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectStream(a.stream)); err != nil {
		return fmt.Errorf("events: record access: %w", err)
	}
	return nil
}

// RecordAsync stores rec without waiting for the stream's acknowledgement:
// what the read path uses, so an audited read costs no extra round trip.
// Failures after the publish left are reported to the JetStream context's
// async error handler. Errors: [ErrInvalidConfig], or a full async queue.
func (a *Auditor) RecordAsync(rec AccessRecord) error {
	m, err := accessMsg(rec)
	if err != nil {
		return err
	}
	if _, err := a.js.PublishMsgAsync(m, jetstream.WithExpectStream(a.stream)); err != nil {
		return fmt.Errorf("events: record access: %w", err)
	}
	return nil
}

// accessMsg is the message of an access record; a zero Time is set to now.
func accessMsg(rec AccessRecord) (*nats.Msg, error) {
	if !validToken(rec.SessionID) {
		return nil, fmt.Errorf("%w: session id %q", ErrInvalidConfig, rec.SessionID)
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("events: encode access record: %w", err)
	}
	m := nats.NewMsg(AccessedSubject(rec.SessionID))
	m.Data = data
	return m, nil
}

// ServiceRecord says that the service registry changed, or that a service
// failed to verify: the bus's [bus.ServiceEvent]. It never holds a secret.
type ServiceRecord = bus.ServiceEvent

// ServiceAuditSubject returns the subject of a service audit record:
// sessionaudit.service.<type>.<service id>.
func ServiceAuditSubject(typ, serviceID string) string {
	return auditServicePrefix + typ + "." + serviceID
}

// RecordService stores rec; a zero Time is set to now. Errors:
// [ErrInvalidConfig] for a type or id that cannot be a subject token, or
// the publish error.
func (a *Auditor) RecordService(ctx context.Context, rec ServiceRecord) error {
	if !validToken(rec.Type) || !validToken(rec.ServiceID) {
		return fmt.Errorf("%w: service record %q/%q", ErrInvalidConfig, rec.Type, rec.ServiceID)
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("events: encode service record: %w", err)
	}
	m := nats.NewMsg(ServiceAuditSubject(rec.Type, rec.ServiceID))
	m.Data = data
	if _, err := a.js.PublishMsg(ctx, m, jetstream.WithExpectStream(a.stream)); err != nil {
		return fmt.Errorf("events: record service change: %w", err)
	}
	return nil
}
