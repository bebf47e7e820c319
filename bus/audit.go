package bus

import (
	"context"
	"net"
	"sync"
	"time"
)

// ServiceEvent records a change to the service registry or a failed
// verification, for the audit trail. It never holds a secret.
type ServiceEvent struct {
	Type      string    `json:"type"` // registered, rotated, removed, verify_failed, login_failed
	ServiceID string    `json:"service_id"`
	Actor     string    `json:"actor"` // the acting service (login_failed: the host)
	Time      time.Time `json:"time"`
	// Count, for verify_failed, is how many verifications of ServiceID
	// failed in the current minute so far: a record is written at the
	// 1st, 10th, 100th, ... failure of a minute, not for every one.
	Count int `json:"count,omitempty"`
}

// Service event types.
const (
	ServiceRegistered   = "registered"
	ServiceRotated      = "rotated"
	ServiceRemoved      = "removed"
	ServiceVerifyFailed = "verify_failed"
	// ServiceLoginFailed counts logins the NATS server refused (accounts
	// mode, where the server checks logins itself), per host: the record's
	// ServiceID is [FailedLoginID] (a login that failed names no service
	// the bus can trust) and its Actor the host.
	ServiceLoginFailed = "login_failed"
)

// FailedLoginID is the ServiceID of [ServiceLoginFailed] records: no
// service id can start with '_'.
const FailedLoginID = "_login"

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

// reportFailedVerify counts a failed verification (a wrong secret, an
// unknown id, or one refused by the rate limit) and logs and audits it as
// a count per minute: at the 1st, 10th, 100th, ... failure of a service id
// in that minute. So a flood of bad logins writes a handful of lines and
// records, not one each, and the first one is seen at once.
func (m *Manager) reportFailedVerify(ctx context.Context, serviceID string) {
	id := sanitizeID(serviceID)
	n := m.failures.add(id, m.o.now())
	if !isPowerOfTen(n) {
		return
	}
	m.log.Info("service verifications failed", keyServiceID, id, "count_this_minute", n)
	if m.o.serviceAudit != nil && ValidateServiceID(serviceID) == nil {
		m.o.serviceAudit(ctx, ServiceEvent{Type: ServiceVerifyFailed, ServiceID: serviceID, Actor: m.caller(ctx),
			Time: m.o.now().UTC(), Count: n})
	}
}

// ReportFailedLogin counts a login the NATS server refused from host, and
// logs and audits ([ServiceLoginFailed]) the count of that host's failures
// in the current minute at the 1st, 10th, 100th, ... one, so a flood of
// bad logins cannot flood the log or the audit stream.
func (m *Manager) ReportFailedLogin(ctx context.Context, host string) {
	if net.ParseIP(host) == nil {
		host = "(unknown host)"
	}
	n := m.failures.add("login "+host, m.o.now())
	if !isPowerOfTen(n) {
		return
	}
	m.log.Info("logins refused", "host", host, "count_this_minute", n)
	if m.o.serviceAudit != nil {
		m.o.serviceAudit(ctx, ServiceEvent{Type: ServiceLoginFailed, ServiceID: FailedLoginID, Actor: host,
			Time: m.o.now().UTC(), Count: n})
	}
}

func isPowerOfTen(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// failureCounts counts failed verifications per service id per minute, in
// bounded memory.
type failureCounts struct {
	mu sync.Mutex
	m  map[string]*failureWindow
}

// add counts one failure of id at now and returns the count in its
// current window.
func (f *failureCounts) add(id string, now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= verifyMaxTracked {
		f.m = map[string]*failureWindow{} // start over: at worst a count restarts at 1
	}
	w, ok := f.m[id]
	if !ok || now.Sub(w.start) >= verifyWindow {
		w = &failureWindow{start: now}
		f.m[id] = w
	}
	w.n++
	return w.n
}

func (m *Manager) auditAccess(ctx context.Context, s *Session) {
	if m.o.accessAudit == nil {
		return
	}
	if reader := m.caller(ctx); reader != s.ServiceID {
		m.o.accessAudit(ctx, AccessEvent{SessionID: s.SessionID, LoginID: s.LoginID, Reader: reader, Creator: s.ServiceID, Time: m.o.now().UTC()})
	}
}
