package events

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
)

func TestDerive(t *testing.T) {
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	body := []byte(`{"session_id":"s1","login_id":"ann","attributes":{"k":"SECRET"},"token_fingerprint":"fp"}`)
	tests := []struct {
		name     string
		giveSubj string
		giveHdr  nats.Header
		giveData []byte
		wantOK   bool
		want     Event
	}{
		{name: "created", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(HeaderOp, "created", HeaderService, "svc"), giveData: body,
			wantOK: true, want: Event{Type: SessionCreated, SessionID: "s1", LoginID: "ann", ServiceID: "svc"}},
		{name: "updated keys", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(HeaderOp, "updated", HeaderKeys, `["k"]`), giveData: body,
			wantOK: true, want: Event{Type: SessionUpdated, SessionID: "s1", LoginID: "ann", Keys: []string{"k"}}},
		{name: "deleted", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(HeaderOp, "deleted", HeaderReason, "evicted", HeaderLogin, "YW5u", "KV-Operation", "PURGE"),
			wantOK: true, want: Event{Type: SessionDeleted, SessionID: "s1", LoginID: "ann", Reason: "evicted"}},
		{name: "foreign purge", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr("KV-Operation", "PURGE")},
		{name: "expired", giveSubj: "$KV.sessions.l.YW5u.s1", giveHdr: hdr(headerMarkerReason, "MaxAge"),
			wantOK: true, want: Event{Type: SessionExpired, SessionID: "s1", LoginID: "ann"}},
		{name: "session marker", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(headerMarkerReason, "MaxAge")},
		{name: "index write", giveSubj: "$KV.sessions.l.YW5u.s1", giveHdr: hdr()},
		{name: "index purge", giveSubj: "$KV.sessions.l.YW5u.s1", giveHdr: hdr("KV-Operation", "PURGE")},
		{name: "token key", giveSubj: "$KV.sessions.t.fp", giveHdr: hdr(headerMarkerReason, "MaxAge")},
		{name: "other bucket", giveSubj: "$KV.other.s.s1", giveHdr: hdr(HeaderOp, "created"), giveData: body},
		{name: "unknown op", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(HeaderOp, "weird"), giveData: body},
		{name: "bad body", giveSubj: "$KV.sessions.s.s1", giveHdr: hdr(HeaderOp, "created"), giveData: []byte("{")},
	}
	at := time.Unix(100, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := derive("sessions", change{subject: tt.giveSubj, seq: 7, time: at, header: tt.giveHdr, data: tt.giveData})
			assert.Equal(t, tt.wantOK, ok)
			if !tt.wantOK {
				return
			}
			tt.want.ID, tt.want.Revision, tt.want.Time = "kv-sessions-7", 7, at.UTC()
			assert.Equal(t, tt.want, ev)
		})
	}
}
