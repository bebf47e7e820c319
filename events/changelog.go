package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// HeaderLog carries a session's change log on every write of its record:
// the last [MaxLogEntries] changes before this one, as a JSON array of
// [LogEntry]. The bucket keeps one revision per key, so when a session
// changes again before the relay has read the previous revision, that
// revision is gone from the stream, but not from the log of the next one:
// the relay announces what it missed from there. It is the store's outbox.
const HeaderLog = "Session-Bus-Log"

// MaxLogEntries is how many earlier changes a record's log keeps: the relay
// loses a change only when more than this many newer changes of the same
// session land while it is not reading (a failover, a burst).
const MaxLogEntries = 8

// LogWindow is how old a logged change may be before writers drop it: far
// longer than a relay failover takes (its lease TTL), short enough that the
// log of a session used now and then holds one entry, not eight, since
// every read of the record carries it.
const LogWindow = 2 * time.Minute

// LogEntry is one earlier change of a session. Field names are short: the
// log rides on every read of the record.
type LogEntry struct {
	Seq      uint64   `json:"q"`
	UnixNano int64    `json:"t"`
	Op       string   `json:"o"`
	Service  string   `json:"s,omitempty"`
	Reason   string   `json:"r,omitempty"`
	Keys     []string `json:"k,omitempty"`
}

// Time is when the store recorded the change.
func (e LogEntry) Time() time.Time { return time.Unix(0, e.UnixNano).UTC() }

// stashSep separates the previous log from the entry of the revision read.
const stashSep = "\x00"

// StashLog keeps what the next write of a record needs to extend its log:
// the log of the revision just read and that revision's own entry. Stores
// call it on every read (it is cheap: no parsing) and pass the result to
// [NextLog] on the following write.
func StashLog(h nats.Header, seq uint64, t time.Time) string {
	op := h.Get(HeaderOp)
	if op == "" {
		return h.Get(HeaderLog)
	}
	var b strings.Builder
	b.WriteString(h.Get(HeaderLog))
	b.WriteString(stashSep)
	b.WriteString(`{"q":`)
	b.WriteString(strconv.FormatUint(seq, 10))
	b.WriteString(`,"t":`)
	b.WriteString(strconv.FormatInt(t.UnixNano(), 10))
	b.WriteString(`,"o":`)
	b.WriteString(strconv.Quote(op)) // ops, service ids and reasons are plain ASCII
	if v := h.Get(HeaderService); v != "" {
		b.WriteString(`,"s":`)
		b.WriteString(strconv.Quote(v))
	}
	if v := h.Get(HeaderReason); v != "" {
		b.WriteString(`,"r":`)
		b.WriteString(strconv.Quote(v))
	}
	if v := h.Get(HeaderKeys); v != "" && json.Valid([]byte(v)) {
		b.WriteString(`,"k":`)
		b.WriteString(v)
	}
	b.WriteString("}")
	return b.String()
}

// NextLog returns the HeaderLog value for the write that follows a read
// whose [StashLog] was stash: the stashed log plus the read revision's
// entry, keeping the last MaxLogEntries not older than [LogWindow] at now.
// Empty when there is nothing to log.
func NextLog(stash string, now time.Time) string {
	prev, entry, found := strings.Cut(stash, stashSep)
	var log []LogEntry
	if prev != "" {
		_ = json.Unmarshal([]byte(prev), &log) // a damaged log only loses history
	}
	if found {
		var e LogEntry
		if json.Unmarshal([]byte(entry), &e) == nil {
			log = append(log, e)
		}
	}
	oldest := now.Add(-LogWindow).UnixNano()
	keep := log[:0]
	for _, e := range log {
		if e.UnixNano >= oldest {
			keep = append(keep, e)
		}
	}
	if len(keep) > MaxLogEntries {
		keep = keep[len(keep)-MaxLogEntries:]
	}
	if len(keep) == 0 {
		return ""
	}
	out, err := json.Marshal(keep)
	if err != nil {
		return ""
	}
	return string(out)
}

// ParseLog decodes a HeaderLog value.
func ParseLog(v string) ([]LogEntry, error) {
	if v == "" {
		return nil, nil
	}
	var log []LogEntry
	if err := json.Unmarshal([]byte(v), &log); err != nil {
		return nil, fmt.Errorf("events: change log: %w", err)
	}
	return log, nil
}
