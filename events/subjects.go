package events

// HeaderSourceSeq was set by relays before the change feed on every event:
// the store change it came from. A relay that finds no delivery recorded in
// the store resumes after the last event's (see Relay).
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

// SessionFilter returns the subject filter matching every event about one
// session: session.*.<session id>.
func SessionFilter(sessionID string) string { return "session.*." + sessionID }

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
