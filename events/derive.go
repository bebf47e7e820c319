package events

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// change is one message of the sessions bucket's stream.
type change struct {
	subject string
	seq     uint64
	time    time.Time
	header  nats.Header
	data    []byte
}

// sessionBody is the part of a stored session record an event may carry.
// Attributes and the token fingerprint are deliberately not decoded.
type sessionBody struct {
	SessionID string `json:"session_id"`
	LoginID   string `json:"login_id"`
}

// EventID returns the stable id of the event derived from change seq of
// the sessions bucket: "kv-<bucket>-<seq>".
func EventID(bucket string, seq uint64) string {
	return "kv-" + bucket + "-" + strconv.FormatUint(seq, 10)
}

// derive turns a change of bucket into an event. ok is false for changes
// that announce nothing: index rewrites and purges, markers on session
// keys (expiry is announced from the login index marker, which names the
// login), and messages not written by the store.
func derive(bucket string, c change) (ev Event, ok bool) {
	rest, found := strings.CutPrefix(c.subject, kvPrefix(bucket))
	if !found {
		return Event{}, false
	}
	ev = Event{ID: EventID(bucket, c.seq), Revision: c.seq, Time: c.time.UTC()}
	switch {
	case strings.HasPrefix(rest, kvLoginPrefix):
		// l.<b64 login>.<session id>: only the server's expiry marker counts.
		if c.header.Get(headerMarkerReason) != markerReasonMaxAge {
			return Event{}, false
		}
		login, id, found := strings.Cut(strings.TrimPrefix(rest, kvLoginPrefix), ".")
		raw, err := base64.RawURLEncoding.DecodeString(login)
		if !found || err != nil || !validToken(id) {
			return Event{}, false
		}
		ev.Type, ev.SessionID, ev.LoginID = SessionExpired, id, string(raw)
		return ev, true
	case strings.HasPrefix(rest, kvSessionPrefix):
		ev.SessionID = strings.TrimPrefix(rest, kvSessionPrefix)
		if !validToken(ev.SessionID) || c.header.Get(headerMarkerReason) != "" {
			return Event{}, false
		}
	default:
		return Event{}, false
	}
	ev.ServiceID = c.header.Get(HeaderService)
	switch op := c.header.Get(HeaderOp); op {
	case "created", "refreshed", "updated":
		var b sessionBody
		if err := json.Unmarshal(c.data, &b); err != nil || b.SessionID != ev.SessionID {
			return Event{}, false
		}
		ev.Type, ev.LoginID = Type("session."+op), b.LoginID
		if op == "updated" {
			if keys := c.header.Get(HeaderKeys); keys != "" {
				_ = json.Unmarshal([]byte(keys), &ev.Keys) // best effort: keys are informative
			}
		}
	case "deleted":
		raw, err := base64.RawURLEncoding.DecodeString(c.header.Get(HeaderLogin))
		if err != nil {
			return Event{}, false
		}
		ev.Type, ev.LoginID, ev.Reason = SessionDeleted, string(raw), c.header.Get(HeaderReason)
	default:
		return Event{}, false
	}
	return ev, true
}

// logged returns the events of the changes in c's change log (HeaderLog)
// that come after seq after, oldest first: changes whose own revisions the
// relay never saw because a newer one replaced them first. cur is the event
// derived from c itself; it supplies the session and login.
func logged(bucket string, c change, cur Event, after uint64) []Event {
	log, err := ParseLog(c.header.Get(HeaderLog))
	if err != nil {
		return nil
	}
	var out []Event
	for _, e := range log {
		if e.Seq <= after || e.Seq >= c.seq {
			continue
		}
		switch e.Op {
		case "created", "refreshed", "updated", "deleted":
		default:
			continue
		}
		out = append(out, Event{
			ID: EventID(bucket, e.Seq), Type: Type("session." + e.Op), SessionID: cur.SessionID, LoginID: cur.LoginID,
			ServiceID: e.Service, Revision: e.Seq, Reason: e.Reason, Keys: e.Keys, Time: e.Time(),
		})
	}
	return out
}
