package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/session-bus/session-bus/bus"
)

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveErr error
		want    string
	}{
		{name: "sentinel", giveErr: bus.ErrSessionNotFound, want: "session not found"},
		{name: "with detail", giveErr: fmt.Errorf("%w: field %q is required", bus.ErrInvalidInput, "token"), want: `invalid input: field "token" is required`},
		{name: "store context before the sentinel", giveErr: fmt.Errorf("kvstore: get session: %w", bus.ErrSessionNotFound), want: "session not found"},
		{name: "store key before the sentinel", giveErr: fmt.Errorf("kvstore: write %q: %w", "sessions.tok.Zm9v", bus.ErrConflict), want: "conflict"},
		{name: "store detail after the sentinel",
			giveErr: fmt.Errorf("kvstore: create session: %w: index writes took over 5s", bus.ErrUnavailable), want: "unavailable: index writes took over 5s"},
		{name: "library prefix after the sentinel",
			giveErr: fmt.Errorf("kvstore: claim login: %w: %w", bus.ErrUnavailable, errors.New("nats: timeout")), want: "unavailable: timeout"},
		{name: "sentinel wrapped twice",
			giveErr: fmt.Errorf("%w: %w", bus.ErrUnavailable, fmt.Errorf("events: relay: %w: stopping", bus.ErrUnavailable)), want: "unavailable: stopping"},
		{name: "context error", giveErr: fmt.Errorf("%w: get session: %w", bus.ErrUnavailable, context.DeadlineExceeded),
			want: "unavailable: get session: context deadline exceeded"},
		{name: "suffix", giveErr: fmt.Errorf("%w (in the subject)", fmt.Errorf("%w: service_id is empty", bus.ErrInvalidInput)),
			want: "invalid input: service_id is empty (in the subject)"},
		{name: "internal", giveErr: bus.ErrInternal, want: "internal error"},
		{name: "internal with detail", giveErr: fmt.Errorf("%w: get service", bus.ErrInternal), want: "internal error"},
		{name: "unknown error", giveErr: errors.New("kvstore: disk on fire at /var/secret"), want: "internal error"},
		{name: "invalid config is internal", giveErr: fmt.Errorf("%w: bad knob", bus.ErrInvalidConfig), want: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, bus.ErrorMessage(tt.giveErr))
		})
	}
}

// TestErrorMessage_Sentinels checks every sentinel with a code reads as a
// sentence of its own, which clients map back.
func TestErrorMessage_Sentinels(t *testing.T) {
	t.Parallel()
	for _, err := range []error{bus.ErrSessionNotFound, bus.ErrServiceNotFound, bus.ErrServiceExists, bus.ErrConflict,
		bus.ErrTokenInUse, bus.ErrInvalidInput, bus.ErrTooLarge, bus.ErrUnauthenticated, bus.ErrPermissionDenied,
		bus.ErrSessionLimit, bus.ErrRateLimited, bus.ErrUnavailable, bus.ErrUnknownOperation, bus.ErrInternal} {
		msg := bus.ErrorMessage(err)
		assert.Equal(t, "bus: "+msg, err.Error())
	}
}
