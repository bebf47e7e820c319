// Package events announces session changes on NATS: event types
// ([Event], [Type]), subjects ([Subject]), the [Relay] that derives events
// from the session store's own change stream, and the listener API
// ([Listen], [Broadcast], [Tail]). Access audit records ([Auditor]) live
// apart, on sessionaudit.>, so change listeners are not flooded by reads.
//
// # From store change to event
//
// The session store offers its changes through [bus.ChangeFeed]: every
// acknowledged create, update and delete, and every expiry, in order per
// session. Package kvstore implements it over its bucket's own stream (it
// alone knows its keys and headers); bus.MemoryStore implements it in
// memory. The [Relay] follows the feed and publishes one event per change
// on session.<type>.<session id> to the events stream (default
// SESSION_EVENTS, subjects session.>, created when missing, see
// [StreamConfig]). The event id is "kv-<bucket>-<change sequence>" and the
// revision is that sequence, so an event derived again from the same change
// is identical. Payloads carry ids, service, revision, reason, keys and
// time: never a token, fingerprint or attribute value.
//
// # Once and in order
//
// Every bus instance runs a Relay. One of them is active: it holds a lease
// (a key in the KV bucket session-bus-relay whose MaxAge is
// [RelayConfig.LeaseTTL], renewed by compare-and-set every TTL/3); the
// others stand by and try to take it every TTL/4. The active relay:
//
//  1. resumes after the store's last recorded delivery (ChangeFeed
//     LastDelivered): a record only relays write, in the store, never a
//     message anyone else could put on the events stream;
//  2. publishes events pipelined, up to [RelayConfig.MaxInFlight] awaiting
//     acknowledgement, each with Nats-Msg-Id = event id and
//     Nats-Expected-Last-Msg-Id = the id of the event before it: the stream
//     stores an event only right after its predecessor, so events are
//     stored in feed order, and a refused or lost one stops every later one;
//  3. records a batch as delivered (ChangeFeed.Delivered) once its last
//     event is acknowledged; on any failure it starts over from the last
//     delivery, and the stream drops what it already has by message id.
//
// Two relays that overlap (a paused holder that has not yet noticed its
// lease is gone) publish the same events in the same order: each copy is a
// duplicate the stream drops ([StreamConfig.Duplicates], default 10 min),
// and the chain holds because duplicates do not move it. After a restart a
// feed may repeat changes at or before the delivery it resumes from
// (kvstore: a session's change log, below); the relay looks up the
// session's last stored event and publishes only what is newer, rather than
// rely on the duplicate window. A stopping relay waits for its events in
// flight and records them. A delivery also records the events stream's
// sequence (Delivery.Mark): a relay that starts skips the events stored
// after it, which a relay killed mid-flight or an overlapping one
// published, so no duplicate reaches the stream (whose unmoved last id
// would break the chain of expected ids) and nothing is announced twice.
//
// Expiry: kvstore announces the l. index entry's MaxAge marker (the server
// writes it 0 to 250 ms after the key's TTL ends); the manager sets capped
// expiries whole seconds from the write, so a session at its absolute
// lifetime ends as promptly as an idle one.
//
// # Nothing lost to lag
//
// kvstore keeps one revision per key (with more, the server stops expiring
// keys by their TTL), so a revision the relay has not read is gone once
// the session changes again. Its change is not: each record carries a
// change log of the session's changes the relay has not delivered yet, an
// outbox inside the write itself (no second write, no crash window). A
// write whose predecessor the relay has delivered starts the log afresh.
// The store refuses a create or update with bus.ErrEventsBehind (503
// events_behind) rather than lose a change: when a session would carry
// more than 64 undelivered changes, and, except for touches, when the
// relay's deliveries are older than kvstore's MaxEventLag (default 30 s).
// A delete is never refused. A record outlives its session by twice
// MaxEventLag, so its changes reach a relay that lags; delete markers live
// MarkerTTL (1 h). What can still be lost: the changes of a session whose
// record expires while no relay delivers for longer than that (a relay
// outage of over a minute by default, writes having stopped after 30 s).
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
