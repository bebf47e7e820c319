package bus

import "time"

// Requests and replies of the wire protocol. Field names are SEED.md's;
// docs/PROTOCOL.md lists which method takes which. Session replies are the
// [Session] JSON itself. Every request field is required unless its comment
// says otherwise.

// SessionIDRequest is the request of get, refresh and delete.
type SessionIDRequest struct {
	SessionID string `json:"session_id"`
}

// TokenRequest is the request of get_by_token and delete_by_token.
type TokenRequest struct {
	Token string `json:"token"`
}

// LoginRequest is the request of list_by_login and delete_all.
type LoginRequest struct {
	LoginID string `json:"login_id"`
}

// CreateRequest is the request of create.
type CreateRequest struct {
	LoginID string `json:"login_id"`
	Token   string `json:"token"`
	// Attributes are optional: the session's first attributes.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// TouchRequest is the request of touch: sessions a cache served, whose
// idle timeout slides as a read's would. At most [MaxTouchBatch] ids.
type TouchRequest struct {
	SessionIDs []string `json:"session_ids"`
}

// MaxTouchBatch is how many sessions one touch may name.
const MaxTouchBatch = 256

// TouchReply is the reply of touch: the ids of the request's sessions that
// no longer exist (a cache drops them).
type TouchReply struct {
	Missing []string `json:"missing"`
}

// CacheSubject is where every bus process announces which sessions a
// write changed, before it answers the write's caller: coherent caches
// (client.WithCache, the bus's own) drop their copies. Services with
// session.read may subscribe; docs/PROTOCOL.md describes the rules.
const CacheSubject = SubjectPrefix + ".cache"

// CacheNotice is one message on [CacheSubject]. It names sessions only:
// no token, secret or attribute value.
type CacheNotice struct {
	// Publisher is a random id of the bus process that sent it.
	Publisher string `json:"p"`
	// Seq counts the publisher's notices from 1: a gap is a lost notice.
	Seq uint64 `json:"s"`
	// SentAt is the publisher's clock, in Unix nanoseconds.
	SentAt int64 `json:"t"`
	// SessionIDs are sessions that changed or ended; a notice without
	// any is a heartbeat.
	SessionIDs []string `json:"ids,omitempty"`
	// Bye says the publisher stops: it sends nothing more.
	Bye bool `json:"bye,omitempty"`
}

// UpdateRequest is the request of update: the new attributes of a session
// and the revision they were based on. A session as a read returned it may
// be sent back whole: its read-only fields are accepted and ignored.
type UpdateRequest struct {
	SessionID  string            `json:"session_id"`
	Attributes map[string]string `json:"attributes"`
	Revision   uint64            `json:"revision"`
	// LoginID is optional; when set it must be the session's.
	LoginID string `json:"login_id,omitempty"`

	// Ignored read-only fields of a [Session].
	Token      string     `json:"token,omitempty"`
	ServiceID  string     `json:"service_id,omitempty"`
	CreateTime *time.Time `json:"create_time,omitempty"`
	LastAccess *time.Time `json:"last_access,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// AttributeKeyRequest is the request of get_attribute and remove_attribute.
type AttributeKeyRequest struct {
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
}

// SetAttributeRequest is the request of set_attribute.
type SetAttributeRequest struct {
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

// AttributeReply is the reply of get_attribute. Value is "" when Found is
// false.
type AttributeReply struct {
	Value string `json:"value"`
	Found bool   `json:"found"`
}

// SessionsReply is the reply of list_by_login: the live sessions of the
// login, oldest first.
type SessionsReply struct {
	Sessions []*Session `json:"sessions"`
}

// DeleteAllReply is the reply of delete_all.
type DeleteAllReply struct {
	Deleted int `json:"deleted"`
}

// VerifyRequest is the request of verify; its reply is the
// [ServiceCredential].
type VerifyRequest struct {
	ServiceID string `json:"service_id"`
	Secret    string `json:"secret"`
}

// RegisterServiceRequest is the request of register_service. ServiceName,
// Permissions and Secret are optional; without a Secret the bus generates
// one.
type RegisterServiceRequest struct {
	ServiceID   string   `json:"service_id"`
	ServiceName string   `json:"service_name,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	Secret      string   `json:"secret,omitempty"`
}

// RotateServiceRequest asks for a new secret (generated when Secret is
// empty); the old one keeps working for GraceSeconds.
type RotateServiceRequest struct {
	ServiceID    string `json:"service_id"`
	Secret       string `json:"secret,omitempty"`
	GraceSeconds int64  `json:"grace_seconds,omitempty"`
}

// RegisterServiceReply is the reply of register_service and
// rotate_service: the only time a secret is sent back.
type RegisterServiceReply struct {
	ServiceID string `json:"service_id"`
	Secret    string `json:"secret"`
}

// ServiceIDRequest is the request of remove_service.
type ServiceIDRequest struct {
	ServiceID string `json:"service_id"`
}

// ServicesReply is the reply of list_services, ordered by id.
type ServicesReply struct {
	Services []ServiceCredential `json:"services"`
}

// EmptyMessage is the request of list_services and the reply of methods
// that return nothing but success: "{}".
type EmptyMessage struct{}

// ErrorReply is the body of every error reply; the same status and message
// travel in the Nats-Service-Error-Code and Nats-Service-Error headers.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a stable code (see [Code]) and a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusErrors lists, for each status of the code table, the sentinel a
// bare status stands for: the widest of those that share it.
var statusErrors = []error{
	ErrInvalidInput, ErrUnauthenticated, ErrPermissionDenied, ErrSessionNotFound, ErrConflict,
	ErrTooLarge, ErrRateLimited, ErrUnavailable, ErrInternal,
}

// ErrorForStatus returns the sentinel an error reply's status stands for
// when its body names no code this side knows (a bus newer than the
// client, or a reply without a body): the widest sentinel of that status
// in the code table (409 [ErrConflict], 429 [ErrRateLimited], ...), or
// [ErrInternal] for a status the table does not hold. Most callers want
// [ErrorForCode], which is exact.
func ErrorForStatus(status int) error {
	for _, err := range statusErrors {
		if CodeOf(err).Status == status {
			return err
		}
	}
	return ErrInternal
}
