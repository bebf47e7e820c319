package events

// Headers the session store writes on every change message, so that a relay
// reading the store's change stream can announce each change exactly once
// with the acting service and the reason.
const (
	// HeaderOp names the change: created, refreshed, updated, deleted.
	HeaderOp = "Session-Bus-Op"
	// HeaderService is the acting service, as the NATS server asserted it.
	HeaderService = "Session-Bus-Service"
	// HeaderReason is why a session was deleted: logout, logout_all, evicted, revoked.
	HeaderReason = "Session-Bus-Reason"
	// HeaderKeys is the JSON array of attribute keys an update changed.
	HeaderKeys = "Session-Bus-Keys"
	// HeaderLogin is the base64url (no padding) login id, on deletes, whose
	// message carries no session body.
	HeaderLogin = "Session-Bus-Login"
)

// HeaderSourceSeq is set by the [Relay] on every event it publishes: the
// sequence of the store change the event was derived from. A relay taking
// over resumes after the last one stored.
const HeaderSourceSeq = "Session-Bus-Source-Seq"

// Subject spaces. Change events live under session.>, access audit records
// under sessionaudit.>, so that listeners of changes are not flooded by reads.
const (
	// SubjectAll matches every change event.
	SubjectAll = "session.>"
	// AuditSubjectAll matches every audit record.
	AuditSubjectAll = "sessionaudit.>"
	// auditAccessedPrefix is the subject prefix of access records.
	auditAccessedPrefix = "sessionaudit.accessed."
	// auditServicePrefix is the subject prefix of service registry records.
	auditServicePrefix = "sessionaudit.service."
)

// Subject returns the subject an event of type t about session id is
// published on: session.<type>.<session id>, e.g. session.deleted.<id>.
func Subject(t Type, sessionID string) string { return string(t) + "." + sessionID }

// SessionSubject returns the subject of ev.
func SessionSubject(ev Event) string { return Subject(ev.Type, ev.SessionID) }

// TypeFilter returns the subject filter matching every event of type t.
func TypeFilter(t Type) string { return string(t) + ".>" }

// AccessedSubject returns the subject of an access audit record about a
// session: sessionaudit.accessed.<session id>.
func AccessedSubject(sessionID string) string { return auditAccessedPrefix + sessionID }

// KVSubjectFilters returns the subjects of a sessions bucket's change
// stream that events derive from: session records and login index entries
// (whose expiry markers announce expiry).
func KVSubjectFilters(bucket string) []string {
	pre := kvPrefix(bucket)
	return []string{pre + kvSessionPrefix + ">", pre + kvLoginPrefix + ">"}
}

// Key layout of the sessions bucket, as package kvstore writes it.
const (
	kvSessionPrefix = "s."
	kvLoginPrefix   = "l."
	// headerMarkerReason is the server's header on a marker it writes when
	// a key's TTL ends ("MaxAge"); headerKVOperation marks deletes and purges.
	headerMarkerReason = "Nats-Marker-Reason"
	headerKVOperation  = "KV-Operation"
	markerReasonMaxAge = "MaxAge"
)

func kvPrefix(bucket string) string { return "$KV." + bucket + "." }

// validToken reports whether s can be one subject token: not empty, no
// dots, wildcards or whitespace, and short.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		switch {
		case r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f:
			return false
		}
	}
	return true
}
