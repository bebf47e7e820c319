// Package integration holds end-to-end tests: real embedded NATS servers, a
// bus served over NATS, and callers that reach it only through package
// client (or raw NATS, for the wire protocol).
package integration
