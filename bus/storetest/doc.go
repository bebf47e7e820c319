// Package storetest is the conformance suite of session-bus: the same
// behavioural tests for any bus.Store, and for any bus.Sessions (a Manager
// in-process, or client.Client over NATS).
//
// Run it against a store of your own:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB) bus.Store { return newMyStore(tb) })
//	}
//
// Each test gets a fresh store from the factory; tests run in parallel.
// Expiry tests take a few seconds and are skipped with -short.
package storetest
