package loadgen

import "errors"

var (
	// ErrInvalidConfig: a [Config] field is out of range, or a phase names
	// an operation that does not exist.
	ErrInvalidConfig = errors.New("loadgen: invalid config")

	// errExhausted is returned by an operation that has no prepared
	// session left to use (deletes): it ends the phase early, and the call
	// does not count.
	errExhausted = errors.New("loadgen: prepared sessions used up")
)
