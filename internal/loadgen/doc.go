// Package loadgen generates load on a session bus and measures it, as
// `session-bus bench` runs it: phases of one operation each, or one
// weighted mix, on a number of concurrent clients, for a count of calls or
// a duration, closed loop or at a fixed total rate (open loop: a call's
// latency counts from when it was due, so a stalled bus shows as latency,
// not as fewer calls: no coordinated omission).
//
// [Run] takes a [Config] (what to run) and a [Target] (how to reach the
// bus: a constructor of clients, and for the baseline a JetStream context
// in the account of the sessions bucket). It creates the sessions the
// reads need before measuring (a pool, sessions of other logins, the
// sessions deletes consume), optionally measures raw kv.Get and kv.Put on
// the same server as a floor, and returns a [Report]: per operation the
// calls, calls per second, p50/p90/p99/p99.9 latency from a log-bucketed
// [Histogram], errors, and the ratio against the raw KV operation of its
// kind. [Report.WriteTable] prints it; it encodes as JSON as documented
// in docs/BENCH.md.
//
// The operations are a table in ops.go; [OpNames] lists them. A Run owns
// the goroutines it starts and has stopped them when it returns; runs at
// the same time are safe, though they share whatever bus they measure.
package loadgen
