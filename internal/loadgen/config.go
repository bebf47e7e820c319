package loadgen

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// Config is what a [Run] does. DefaultConfig states every default.
type Config struct {
	// Phases run in order: one per operation (see [ParseTests]) or one
	// mix ([ParseMix]). Required.
	Phases []Phase
	// Clients is how many goroutines call at once. Default 16.
	Clients int
	// Count is the calls each phase makes; 0 runs each phase for Duration.
	Count int
	// Duration of each phase when Count is 0. Default 5s.
	Duration time.Duration
	// Rate is the calls per second of a phase, over all clients, open
	// loop: a call is due at start + k/Rate and its latency counts from
	// then, so calls the bus delays show as latency. With a Duration, the
	// calls due that no client could start before its end are reported as
	// missed. 0 (the default): each client calls again as soon as its call
	// returns.
	Rate float64

	// Sessions is the size of the pool the reads and the writes to
	// existing sessions spread over, created before the first phase that
	// needs it. Default 1000.
	Sessions int
	// LoginSessions is how many pool sessions share a login: what a list
	// returns. Default 5.
	LoginSessions int
	// OtherSessions are created first, each of a login of its own, so
	// lists run among many sessions. Default 0.
	OtherSessions int
	// DeleteSessions is how many sessions are created for the deletes of a
	// phase that runs for a Duration without a Rate; the phase ends early
	// when they are used up. With a Count or a Rate the deletes are known
	// beforehand and exactly that many are created. Default 20000.
	DeleteSessions int

	// Progress receives a progress line about every ProgressInterval
	// (default 1s): rewritten in place with ProgressRewrite (a terminal),
	// else one line each time. Default nil: none.
	Progress         io.Writer
	ProgressInterval time.Duration
	ProgressRewrite  bool
}

// DefaultConfig returns the defaults stated on each [Config] field; Phases
// are all the operations, each in a phase of its own.
func DefaultConfig() Config {
	phases := make([]Phase, len(opTable))
	for i, o := range opTable {
		phases[i] = Phase{Name: o.name, Ops: []Weighted{{Op: o.name, Weight: 1}}}
	}
	return Config{
		Phases:           phases,
		Clients:          16,
		Duration:         5 * time.Second,
		Sessions:         1000,
		LoginSessions:    5,
		DeleteSessions:   20000,
		ProgressInterval: time.Second,
	}
}

// maxClients bounds Clients.
const maxClients = 100000

// Validate reports the first field out of range, as [ErrInvalidConfig].
func (c Config) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case len(c.Phases) == 0:
		return invalid("no phase to run")
	case c.Clients < 1 || c.Clients > maxClients:
		return invalid("clients must be 1..%d", maxClients)
	case c.Count < 0:
		return invalid("count must not be negative")
	case c.Count == 0 && c.Duration <= 0:
		return invalid("give a count or a positive duration")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return invalid("rate must be a number of calls per second, or 0")
	case c.Sessions < 1:
		return invalid("sessions must be at least 1")
	case c.LoginSessions < 1:
		return invalid("login sessions must be at least 1")
	case c.OtherSessions < 0:
		return invalid("other sessions must not be negative")
	case c.DeleteSessions < 1:
		return invalid("delete sessions must be at least 1")
	case c.Progress != nil && c.ProgressInterval <= 0:
		return invalid("progress interval must be positive")
	}
	for _, p := range c.Phases {
		if len(p.Ops) == 0 {
			return invalid("phase %s has no operation", p.Name)
		}
		for _, w := range p.Ops {
			if _, ok := lookupOp(w.Op); !ok {
				return unknownOp(w.Op)
			}
			if w.Weight < 1 || w.Weight > maxWeight {
				return invalid("weight of %s must be 1..%d", w.Op, maxWeight)
			}
		}
	}
	return nil
}

// Target is the bus a [Run] measures.
type Target struct {
	// Client returns a client of the bus with opts added to the target's
	// own: called once for the operations that add none (and for the
	// sessions prepared), and once for each operation that adds some.
	// Required.
	Client func(opts ...client.Option) (bus.Sessions, error)
	// Baseline, when set, has Run also measure raw kv.Get and kv.Put on
	// the sessions bucket's server, and compare each operation with them.
	Baseline *Baseline
}

// Baseline is where the raw KV floor runs.
type Baseline struct {
	// JetStream is a JetStream context in the account of the sessions
	// bucket (the bus's own account in accounts mode). Run creates a
	// temporary bucket there, configured as Bucket, and deletes it after.
	JetStream jetstream.JetStream
	// Bucket is the sessions bucket: its configuration is copied, and the
	// largest of its first values sampled sets the raw values' size.
	Bucket string
}
