package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is an event type. Its value is also the subject prefix the event is
// published under (see [Subject]).
type Type string

// Change event types.
const (
	// SessionCreated: a session was created; Keys names the attributes it
	// was created with.
	SessionCreated Type = "session.created"
	// SessionRefreshed: a use moved the session's idle timeout.
	SessionRefreshed Type = "session.refreshed"
	// SessionUpdated: attributes were set or removed; Keys names them.
	SessionUpdated Type = "session.updated"
	// SessionDeleted: the session was ended; Reason says why (logout,
	// logout_all, evicted, revoked).
	SessionDeleted Type = "session.deleted"
	// SessionExpired: the session's TTL ran out; the server removed it.
	SessionExpired Type = "session.expired"
)

// Types lists every change event type.
var Types = []Type{SessionCreated, SessionRefreshed, SessionUpdated, SessionDeleted, SessionExpired}

func (t Type) valid() bool {
	for _, v := range Types {
		if t == v {
			return true
		}
	}
	return false
}

// Event is one change of one session, as published on the events stream.
// It carries ids, the acting service, time, revision and reason; never a
// token, a secret or an attribute value.
type Event struct {
	// ID is stable for one store change ("kv-<bucket>-<stream sequence>"):
	// a redelivered event has the same ID, so handlers de-duplicate by it.
	ID   string `json:"event_id"`
	Type Type   `json:"type"`
	// SessionID and LoginID identify the session and its user.
	SessionID string `json:"session_id"`
	LoginID   string `json:"login_id"`
	// ServiceID is the acting service; empty for session.expired.
	ServiceID string `json:"service_id,omitempty"`
	// Revision is the store revision of the change.
	Revision uint64 `json:"revision"`
	// Reason is set on session.deleted.
	Reason string `json:"reason,omitempty"`
	// Keys names the attribute keys a session.updated changed, or a
	// session.created set.
	Keys []string `json:"keys,omitempty"`
	// Time is when the store recorded the change (server clock).
	Time time.Time `json:"time"`
}

// Decode parses an event payload.
func Decode(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	if !ev.Type.valid() || ev.ID == "" || ev.SessionID == "" {
		return Event{}, fmt.Errorf("%w: missing type, id or session", ErrBadEvent)
	}
	return ev, nil
}
