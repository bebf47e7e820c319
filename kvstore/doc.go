// Package kvstore keeps sessions in a NATS JetStream KeyValue bucket. It
// implements bus.Store: the server enforces each session's TTL per key (the
// bucket has LimitMarkerTTL), every write is compare-and-set on a revision,
// and a login's sessions are listed by key prefix without scanning the
// bucket: on one replica with one batched direct get (list.go), which also
// reads many sessions in one round trip (Store.GetSessions). Where the
// server stages atomic batches in memory (replicated or memory buckets), a
// create's three writes are one atomic batch (batch.go).
//
// Key layout, in the sessions bucket (see keys.go):
//
//	s.<session id>           the session, JSON
//	l.<b64 login>.<session>  the login index entry, same TTL as the session
//	t.<token fingerprint>    the token index entry -> session id, same TTL
//	f.<b64 login>            a DeleteAllSessions fence, short TTL
//	d.delivered              how far the change feed's reader has delivered
//
// Login ids are base64url-encoded before they become key tokens, so any
// string works; tokens appear only as a keyed fingerprint. Service records
// live in a bucket of their own, without TTL.
//
// The store is also a bus.ChangeFeed: every session record write carries
// headers naming the change, the acting service, the reason and the change
// log (changes.go), and the feed reads them back from the bucket's own
// stream (feed.go). This package alone declares its keys and headers; the
// event relay gets changes through the feed. A write that would outrun the
// feed's reader is refused with bus.ErrEventsBehind (delivery.go). A
// [Store] is safe for concurrent use; Close stops its watch.
package kvstore
