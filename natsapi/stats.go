package natsapi

import (
	"sync/atomic"

	"github.com/nats-io/nats.go/micro"

	"github.com/session-bus/session-bus/bus"
)

// endpointStats are the counters of one endpoint, reported as the "data"
// of `nats micro stats`. micro's own num_requests counts every request;
// its num_errors counts only those refused before dispatch.
type endpointStats struct {
	inFlight  atomic.Int64
	served    atomic.Uint64
	errors    atomic.Uint64
	rejected  atomic.Uint64
	procNanos atomic.Int64
}

// EndpointStats is the "data" of an endpoint in `nats micro stats` and in
// [Server.Stats].
type EndpointStats struct {
	// InFlight is how many requests run now.
	InFlight int64 `json:"in_flight"`
	// Served counts requests answered after dispatch, errors included.
	Served uint64 `json:"served"`
	// Errors counts error replies of dispatched requests.
	Errors uint64 `json:"errors"`
	// Rejected counts requests refused with 503 because
	// max-in-flight requests were running.
	Rejected uint64 `json:"rejected"`
	// AverageProcessingTime is the mean handling time of served requests,
	// in nanoseconds.
	AverageProcessingTime int64 `json:"average_processing_time"`
	// MaxInFlight is the instance's limit (shared by its endpoints).
	MaxInFlight int `json:"max_in_flight"`
}

// statsData is micro's StatsHandler: the [EndpointStats] of endpoint e.
func (s *Server) statsData(e *micro.Endpoint) any {
	st, ok := s.stats[bus.Class(e.Name)]
	if !ok {
		return nil
	}
	d := EndpointStats{
		InFlight:    st.inFlight.Load(),
		Served:      st.served.Load(),
		Errors:      st.errors.Load(),
		Rejected:    st.rejected.Load(),
		MaxInFlight: s.o.maxInFlight,
	}
	if d.Served > 0 {
		d.AverageProcessingTime = st.procNanos.Load() / int64(d.Served)
	}
	return d
}
