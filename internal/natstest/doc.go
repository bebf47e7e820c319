// Package natstest starts embedded nats-servers for tests: one per test, on
// a random loopback port, with JetStream in a temp dir, torn down by
// Cleanup. Only tests and integration/ import it.
package natstest
