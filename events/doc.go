// Package events announces session changes on NATS: event types
// ([Event], [Type]), subjects ([Subject]), the [Relay] that derives events
// from the session store's own change stream, and the listener API
// ([Listen], [Broadcast], [Tail]). Access audit records ([Auditor]) live
// apart, on sessionaudit.>, so change listeners are not flooded by reads.
//
// # From store change to event
//
// Package kvstore writes every change with headers (see subjects.go) naming
// the change, the acting service and the reason. The [Relay] reads the
// sessions bucket's stream (KV_<bucket>, subjects s.> and l.>) and
// publishes one event per change on session.<type>.<session id> to the
// events stream (default SESSION_EVENTS, subjects session.>, created when
// missing, see [StreamConfig]):
//
//	s.<id> created/refreshed/updated  -> session.created/refreshed/updated
//	s.<id> delete marker, op deleted  -> session.deleted (reason from the header)
//	l.<login>.<id> MaxAge marker      -> session.expired (the marker names login and session)
//	anything else                     -> nothing (index rewrites and purges,
//	                                     s./t. markers, expired delete markers)
//
// The event id is "kv-<bucket>-<stream sequence>" and the revision is that
// sequence, so an event re-derived from the same change is identical.
// Payloads carry ids, service, revision, reason, keys and time: never a
// token, fingerprint or attribute value.
//
// # Once and in order: one active relay, publishing in order, de-duplicated
//
// Every bus instance runs a Relay. One of them is active: it holds a lease
// (a key in the KV bucket session-bus-relay whose MaxAge is
// [RelayConfig.LeaseTTL], renewed by compare-and-set every TTL/3); the
// others stand by and try to take it every TTL/4. The active relay:
//
//  1. finds its checkpoint: the source sequence (header
//     Session-Bus-Source-Seq) of the last event stored in the events
//     stream; with none, the time of the stream's last message or its
//     creation, so a first start does not announce old changes;
//  2. reads the change stream from there with an ordered consumer (no acks,
//     no server-side state to hand over);
//  3. publishes each event with Nats-Msg-Id = event id and waits for the
//     ack before reading on; a failed publish is retried, never skipped.
//
// Since the checkpoint is what the stream actually stored, a relay that
// dies between publishing and anything else loses nothing: its successor
// resumes after the last stored event. Two relays that overlap (a paused
// holder that has not yet noticed its lease is gone) both publish, and the
// stream's duplicate window ([StreamConfig.Duplicates], default 10 min)
// drops the second copy. Order survives the overlap as well: each relay
// publishes in change order and waits for every ack, so event n+1 is only
// ever stored after event n. The lease only saves duplicate work;
// correctness rests on the checkpoint and de-duplication.
//
// Why not a durable pull consumer with a pinned priority group? The server
// moves the pin after PinnedTTL but leaves the old client's unacknowledged
// messages pending until AckWait, so the new client announces newer
// changes before older ones unless MaxAckPending is 1, which serialises
// every change through an ack round trip. The checkpoint design keeps
// order on failover without that cost.
//
// Expiry: the server writes the l. marker when the key's TTL ends (0–250 ms
// late); the active relay announces it within milliseconds. Markers are kept
// for the store's MarkerTTL (kvstore default 1 h), and so are delete purges:
// a relay that was down for less than that still announces them.
//
// # Changes the relay did not see: the change log
//
// The sessions bucket keeps one revision per key (with more, the server
// stops expiring keys by their TTL), so a revision the relay has not read
// yet is gone from the stream once the same session changes again. It is
// not gone from the store: every write of a session record carries, in
// header Session-Bus-Log ([HeaderLog]), the last [MaxLogEntries] changes
// before it (sequence, time, op, service, reason, keys), chained from read
// to write by kvstore. Reading a record, the relay first announces the
// logged changes it has not announced yet (event ids and revisions are
// theirs, so the events are the same as if read directly), then the record's
// own change. It is an outbox inside the write itself: no second write, so
// no crash window between a change and its announcement.
//
// What can still be lost: more than MaxLogEntries changes of one session
// while no relay reads (a failover lasts up to LeaseTTL), and changes just
// before a session expires while no relay reads (the expiry marker carries
// no log). A relay that restarts re-announces the log of each session it
// sees again; the duplicate window drops copies younger than 10 minutes,
// older ones reach listeners again with the same event id.
//
// # Listening
//
// [Listen] joins a durable group: each event is handled by one instance,
// acknowledged when the handler returns nil, redelivered with backoff
// otherwise (at least once: de-duplicate by [Event.ID]). A group handles
// one event at a time by default (max ack pending 1): in stream order, so
// in order per session, across instances and redeliveries, at the cost of
// one ack round trip per event; [WithMaxAckPending] trades order for
// throughput. [Broadcast] gives every instance every event through an
// ordered consumer. Both filter by type on the server ([WithTypes]) and by
// login in the client ([WithLogin]), and start from now, a time
// ([WithStartTime]) or the beginning ([WithDeliverAll]). Handler calls of
// one listener never overlap and see events in stream order.
//
// Relays, listeners and auditors are safe for concurrent use; Close on
// each is safe to call twice and waits for its goroutines.
package events
