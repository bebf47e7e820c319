package bus

import (
	"maps"
	"time"
)

// Session is one login of one user, shared by every service on the bus.
// JSON field names are the wire protocol's (SEED.md's, plus expires_at and
// revision).
type Session struct {
	// SessionID is a random UUID v4, assigned on create.
	SessionID string `json:"session_id"`
	// LoginID identifies the user; one login may have many sessions.
	LoginID string `json:"login_id"`
	// Token is the user's token. It is set only on the session that
	// CreateSession returns: it is never stored, only its fingerprint is.
	Token string `json:"token,omitempty"`
	// ServiceID is the service that created the session.
	ServiceID  string    `json:"service_id"`
	CreateTime time.Time `json:"create_time"`
	// LastAccess is the last time a use extended the idle timeout.
	LastAccess time.Time `json:"last_access"`
	// ExpiresAt is when the session ends unless it is used again: the idle
	// timeout after LastAccess, capped by the absolute lifetime.
	ExpiresAt  time.Time         `json:"expires_at"`
	Attributes map[string]string `json:"attributes"`
	// Revision is the store's revision of this version of the session;
	// UpdateSession succeeds only when it is still the latest.
	Revision uint64 `json:"revision"`

	// TokenFingerprint is the keyed hash of the token that stores index
	// and look up by. It never goes on the wire.
	TokenFingerprint string `json:"-"`
}

// Clone returns a deep copy of s.
func (s *Session) Clone() *Session {
	c := *s
	c.Attributes = maps.Clone(s.Attributes)
	if c.Attributes == nil {
		c.Attributes = map[string]string{}
	}
	return &c
}

// expired reports whether s has ended at now.
func (s *Session) expired(now time.Time) bool {
	return !now.Before(s.ExpiresAt)
}

// ServiceCredential describes a service allowed on the bus. Its secret is
// an input of RegisterService only: it is stored as a hash and never
// returned.
type ServiceCredential struct {
	ServiceID   string    `json:"service_id"`
	ServiceName string    `json:"service_name"`
	CreatedAt   time.Time `json:"created_at"`
	Permissions []string  `json:"permissions"`
	// Account is the public key of the service's own NATS account when
	// the bus gives services accounts ([WithAccounts]).
	Account string `json:"account,omitempty"`
}

// ServiceRecord is what a [Store] keeps for a service: the credential and
// the argon2id hash of its secret. After a rotation the previous secret's
// hash is kept until PrevValidUntil, so callers can switch over.
type ServiceRecord struct {
	Credential     ServiceCredential `json:"credential"`
	SecretHash     string            `json:"secret_hash"`
	PrevSecretHash string            `json:"prev_secret_hash,omitempty"`
	PrevValidUntil time.Time         `json:"prev_valid_until,omitzero"`
	// Revision is the store's revision of the record, for compare-and-set.
	Revision uint64 `json:"-"`
}
