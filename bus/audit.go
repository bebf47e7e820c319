package bus

import (
	"context"
	"time"
)

// ServiceEvent records a change to the service registry or a failed
// verification, for the audit trail. It never holds a secret.
type ServiceEvent struct {
	Type      string    `json:"type"` // registered, rotated, removed, verify_failed
	ServiceID string    `json:"service_id"`
	Actor     string    `json:"actor"` // the acting service
	Time      time.Time `json:"time"`
}

// Service event types.
const (
	ServiceRegistered   = "registered"
	ServiceRotated      = "rotated"
	ServiceRemoved      = "removed"
	ServiceVerifyFailed = "verify_failed"
)

// AccessEvent records a read of a session by a service other than the one
// that created it (SEED.md's "audit logging of cross-service access").
type AccessEvent struct {
	SessionID string    `json:"session_id"`
	LoginID   string    `json:"login_id"`
	Reader    string    `json:"reader"`
	Creator   string    `json:"creator"`
	Time      time.Time `json:"time"`
}

// WithServiceAudit calls fn for every registration, rotation, removal and
// failed verification. fn runs on the caller's goroutine and must not block.
func WithServiceAudit(fn func(context.Context, ServiceEvent)) Option {
	return func(o *options) error {
		o.serviceAudit = fn
		return nil
	}
}

// WithAccessAudit calls fn for every read of a session by a service other
// than its creator. Off by default: it costs work on the read path. fn runs
// on the caller's goroutine and must not block.
func WithAccessAudit(fn func(context.Context, AccessEvent)) Option {
	return func(o *options) error {
		o.accessAudit = fn
		return nil
	}
}

func (m *Manager) auditService(ctx context.Context, typ, serviceID string) {
	if m.o.serviceAudit != nil {
		m.o.serviceAudit(ctx, ServiceEvent{Type: typ, ServiceID: serviceID, Actor: m.caller(ctx), Time: m.o.now().UTC()})
	}
}

func (m *Manager) auditAccess(ctx context.Context, s *Session) {
	if m.o.accessAudit == nil {
		return
	}
	if reader := m.caller(ctx); reader != s.ServiceID {
		m.o.accessAudit(ctx, AccessEvent{SessionID: s.SessionID, LoginID: s.LoginID, Reader: reader, Creator: s.ServiceID, Time: m.o.now().UTC()})
	}
}
