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
// A Client is safe for concurrent use.
package client
