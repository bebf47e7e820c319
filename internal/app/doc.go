// Package app wires a session-bus process: an embedded nats-server with
// JetStream (or a connection to an external NATS), the KV store, the
// manager and the NATS service, started in that order and stopped in
// reverse. cmd/session-bus only turns flags into a [Config] and waits for a
// signal.
package app
