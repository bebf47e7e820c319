package kvstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// Headers every session record write carries, so that the bucket's own
// stream says what changed: the feed (feed.go) reads them back. Nothing
// outside this package reads or writes them.
const (
	// headerOp names the change: created, refreshed, updated, deleted.
	headerOp = "Session-Bus-Op"
	// headerService is the acting service, as the NATS server asserted it.
	headerService = "Session-Bus-Service"
	// headerReason is why a session was deleted.
	headerReason = "Session-Bus-Reason"
	// headerKeys is the JSON array of attribute keys an update changed.
	headerKeys = "Session-Bus-Keys"
	// headerLogin is the base64url login id, on deletes, whose message
	// carries no session body.
	headerLogin = "Session-Bus-Login"
	// headerLog is the change log: the changes of the session before this
	// write that the feed's reader may not have delivered (see changeLog).
	headerLog = "Session-Bus-Log"
)

// maxLogEntries bounds a record's change log: a session that would carry
// more undelivered changes is refused further writes (bus.ErrEventsBehind)
// until the reader catches up.
const maxLogEntries = 64

// logEntry is one earlier change in a record's log. Field names are short:
// the log rides on every read of the record while it is not empty.
type logEntry struct {
	Seq      uint64   `json:"q"`
	UnixNano int64    `json:"t"`
	Op       string   `json:"o"`
	Service  string   `json:"s,omitempty"`
	Reason   string   `json:"r,omitempty"`
	Keys     []string `json:"k,omitempty"`
}

// changeLog is what the next write of a session needs from the revision it
// replaces: that revision's own change and the log it carried. The bucket
// keeps one revision per key (with more, the server stops expiring keys by
// their TTL), so once a session changes again its previous revision is gone
// from the stream; a feed reader that had not read it finds it in the log of
// the next revision. The log is the store's outbox, inside the write itself.
type changeLog struct {
	rev  uint64
	prev string    // the replaced revision's own log, raw JSON ("" when empty)
	own  *logEntry // the replaced revision's change; nil when it made none
}

// readLog takes the change log of a stored revision from its headers. It
// parses nothing: most writes find the log delivered and start afresh.
func readLog(h nats.Header, seq uint64, t time.Time) changeLog {
	l := changeLog{rev: seq, prev: h.Get(headerLog)}
	if op := h.Get(headerOp); op != "" {
		e := &logEntry{Seq: seq, UnixNano: t.UnixNano(), Op: op, Service: h.Get(headerService), Reason: h.Get(headerReason)}
		if keys := h.Get(headerKeys); keys != "" {
			_ = json.Unmarshal([]byte(keys), &e.Keys) // keys are informative
		}
		l.own = e
	}
	return l
}

// next returns the log the write replacing l's revision carries. When the
// reader has delivered l's revision, the reader read it while it was the
// latest, with its log: nothing is owed and the log starts afresh.
// Otherwise it is l's log plus l's own change; past maxLogEntries it is
// bus.ErrEventsBehind when a reader depends on it (unbounded: the write is
// a delete, which keeps all), and the oldest entries are dropped when none
// does.
func (l changeLog) next(d delivery, unbounded bool) (string, error) {
	if d.known && d.Position >= l.rev {
		return "", nil
	}
	entries, err := parseLog(l.prev)
	if err != nil {
		entries = nil // a damaged log only loses history
	}
	if l.own != nil {
		entries = append(entries, *l.own)
	}
	if len(entries) > maxLogEntries {
		switch {
		case d.known && unbounded: // a delete keeps them all
		case d.known:
			return "", fmt.Errorf("%w: %d changes of this session not delivered yet", bus.ErrEventsBehind, len(entries)-1)
		default: // no reader depends on them
			entries = entries[len(entries)-maxLogEntries:]
		}
	}
	if len(entries) == 0 {
		return "", nil
	}
	out, err := json.Marshal(entries)
	if err != nil {
		return "", fmt.Errorf("kvstore: encode change log: %w", err)
	}
	if len(out) > maxLogBytes {
		// Many long attribute keys: drop them (they only inform), keep
		// every change.
		for i := range entries {
			entries[i].Keys = nil
		}
		if out, err = json.Marshal(entries); err != nil {
			return "", fmt.Errorf("kvstore: encode change log: %w", err)
		}
	}
	return string(out), nil
}

// maxLogBytes bounds a change log with its attribute keys; past it the
// keys are left out (65 entries without keys take about 5 KiB).
const maxLogBytes = 16 << 10

func parseLog(v string) ([]logEntry, error) {
	if v == "" {
		return nil, nil
	}
	var log []logEntry
	if err := json.Unmarshal([]byte(v), &log); err != nil {
		return nil, fmt.Errorf("kvstore: change log: %w", err)
	}
	return log, nil
}

// changeHeader is the headers of a write that makes change c and carries
// log (from changeLog.next).
func changeHeader(c bus.Change, log string) nats.Header {
	h := nats.Header{}
	if log != "" {
		h.Set(headerLog, log)
	}
	h.Set(headerOp, string(c.Op))
	if bus.ValidateServiceID(c.Service) == nil { // never a raw header from an unchecked caller
		h.Set(headerService, c.Service)
	}
	if c.Reason != "" {
		h.Set(headerReason, c.Reason)
	}
	if len(c.Keys) > 0 {
		keys, _ := json.Marshal(c.Keys) // []string always marshals
		h.Set(headerKeys, string(keys))
	}
	return h
}

// logRecords turns the entries of a log carried by revision seq of a
// session into change records, oldest first.
func logRecords(v string, seq uint64, sessionID, loginID string) []bus.ChangeRecord {
	entries, err := parseLog(v)
	if err != nil {
		return nil
	}
	out := make([]bus.ChangeRecord, 0, len(entries))
	for _, e := range entries {
		op := bus.ChangeOp(e.Op)
		if e.Seq >= seq || !knownOp(op) {
			continue
		}
		out = append(out, bus.ChangeRecord{
			Seq: e.Seq, Time: time.Unix(0, e.UnixNano).UTC(), Op: op, SessionID: sessionID, LoginID: loginID,
			ServiceID: e.Service, Reason: e.Reason, Keys: slices.Clone(e.Keys),
		})
	}
	return out
}

func knownOp(op bus.ChangeOp) bool {
	switch op {
	case bus.OpCreated, bus.OpRefreshed, bus.OpUpdated, bus.OpDeleted:
		return true
	}
	return false
}
