package sessioncache

import (
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// ForBus wires a bus process into the caches: its notices, published on
// nc, and (with maxEntries > 0) its own coherent copy of hot sessions,
// which answers reads without a store round trip. nc must be the
// connection that answers the bus's requests, so that each notice reaches
// the server before its write's reply. It returns the Manager options, the
// publisher's Notify (for the event relay's backstop notices, see
// events.RelayConfig.Notify) and a stop to call after the last request is
// answered and the relay has stopped.
func ForBus(nc *nats.Conn, maxEntries int, log *slog.Logger) (opts []bus.Option, notify func(ids ...string), stop func(), err error) {
	pub := NewPublisher(nc, bus.CacheSubject)
	opts = []bus.Option{bus.WithChangeNotifier(pub.Notify)}
	if maxEntries <= 0 {
		return opts, pub.Notify, pub.Close, nil
	}
	c := New(maxEntries)
	f, err := Follow(nc, c, FollowConfig{Log: log, Strict: true})
	if err != nil {
		pub.Close()
		return nil, nil, nil, err
	}
	return append(opts, bus.WithReadCache(c)), pub.Notify, func() { pub.Close(); f.Close() }, nil
}
