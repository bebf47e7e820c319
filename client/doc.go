// Package client is what a Go service imports to use session-bus: the
// operations of bus.Manager, over NATS request-reply, with the same typed
// errors.
//
// A [Client] implements bus.Sessions, so code written against that
// interface runs on an in-process Manager or over the wire alike, and
// errors.Is(err, bus.ErrSessionNotFound) holds either way. Each call is one
// request to "sessionbus.<class>.<method>.<service>" (docs/PROTOCOL.md),
// where <service> is the id set with [WithServiceID]: under server-enforced
// permissions it must be the NATS identity of the calling service.
//
// Failures of the transport map to bus sentinels too: no bus running is
// bus.ErrUnavailable at once (not a timeout), a deadline is
// bus.ErrUnavailable wrapping the context error, and a publish the NATS
// server refuses for lack of permission is bus.ErrPermissionDenied as soon
// as the server says so.
//
// Connecting is the caller's: a service logs in to NATS with
// [CredsFileOptions] (the credentials file the bus wrote for it, either
// kind) or [ConnectOptions] (its id and secret, with the auth callout),
// then hands the connection to [New] with the same id in [WithServiceID].
// Under the auth callout a service receives replies only on its own inbox
// prefix, [InboxPrefix]. This package links nats.go but not nats-server,
// so a service that imports it stays small.
//
// A Client is safe for concurrent use.
package client
