// Package auth lets services log in to NATS with their own bus
// credentials, and turns their bus permissions into subject permissions
// that the NATS server enforces.
//
// The NATS server hands every login that is not one of the bus's own users
// to an auth callout ($SYS.REQ.USER.AUTH) that the bus serves: [Callout].
// It reads the connect options (user = service id, password = the
// service's secret), checks them with a [Verifier] (*bus.Manager), and
// answers with a user JWT, signed by the issuer key, whose permissions
// [Permissions] derives from the service's permission list. A failed login
// gets an authorization error that never says which part was wrong.
//
// A service's access ends when its JWT expires ([Config.TokenTTL]) or when
// [Callout.Revoke] closes its connections through the system account;
// [Callout.WatchRemovals] does that for every service removed from the
// services bucket, by whichever bus process.
//
// Setup: [Bootstrap] creates (first start) or loads the keys and passwords
// kept in the data dir, [ServerOptions] configures an embedded server for
// this mode, and [ServerConfig] writes the same as nats-server config text
// for an external server. Services connect with [client.ConnectOptions].
//
// A Callout is safe for concurrent use; it handles up to
// [DefaultMaxConcurrent] logins at once.
package auth
