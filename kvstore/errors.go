package kvstore

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrBucketNoTTL: an existing bucket was not created with per-key TTL
	// support (LimitMarkerTTL), so sessions would never expire.
	ErrBucketNoTTL = errors.New("kvstore: bucket does not support per-key TTL")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("kvstore: invalid config")
)

// isWrongLastSeq reports a lost compare-and-set: 10071, or 10164 on
// replicated streams.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}
