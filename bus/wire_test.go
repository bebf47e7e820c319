package bus

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestErrorForStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		giveStatus int
		want       error
	}{
		{400, ErrInvalidInput},
		{401, ErrUnauthenticated},
		{403, ErrPermissionDenied},
		{404, ErrSessionNotFound},
		{409, ErrConflict},
		{413, ErrTooLarge},
		{429, ErrRateLimited},
		{500, ErrInternal},
		{503, ErrUnavailable},
		{418, ErrInternal},
		{0, ErrInternal},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ErrorForStatus(tt.giveStatus), "status %d", tt.giveStatus)
	}
}

// TestErrorForStatus_CoversCodes checks that every status of the code
// table stands for a sentinel of that status.
func TestErrorForStatus_CoversCodes(t *testing.T) {
	t.Parallel()
	for _, c := range codes {
		assert.Equal(t, c.code.Status, CodeOf(ErrorForStatus(c.code.Status)).Status, "status %d (%s)", c.code.Status, c.code.Name)
	}
}
