package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
)

// TestEnsureAdmin_ReplacesWhatItCannotVerify: an admin record that the
// admin file's secret does not verify (overwritten by an attacker, say),
// or that lost permissions, is replaced at the next start; a sound one is
// kept as it is.
func TestEnsureAdmin_ReplacesWhatItCannotVerify(t *testing.T) {
	t.Parallel()
	keys, err := auth.Bootstrap(t.TempDir())
	require.NoError(t, err)
	m, err := bus.New(bus.NewMemoryStore(), "bus", time.Hour)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, auth.EnsureAdmin(ctx, m, keys))
	first, err := m.VerifyService(ctx, auth.AdminServiceID, keys.Admin.Secret)
	require.NoError(t, err)
	require.NoError(t, auth.EnsureAdmin(ctx, m, keys), "a second start")
	again, err := m.VerifyService(ctx, auth.AdminServiceID, keys.Admin.Secret)
	require.NoError(t, err)
	assert.Equal(t, first.CreatedAt, again.CreatedAt, "a sound record is kept")

	tests := []struct {
		name   string
		tamper func(t *testing.T)
	}{
		{"secret overwritten", func(t *testing.T) {
			_, err := m.RotateService(ctx, auth.AdminServiceID, "attacker-chosen-secret-0123456789", 0)
			require.NoError(t, err)
		}},
		{"permissions stripped", func(t *testing.T) {
			require.NoError(t, m.RemoveService(ctx, auth.AdminServiceID))
			_, err := m.RegisterService(ctx, bus.ServiceCredential{ServiceID: auth.AdminServiceID, Permissions: []string{auth.PermSessionRead}}, keys.Admin.Secret)
			require.NoError(t, err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tamper(t)
			require.NoError(t, auth.EnsureAdmin(ctx, m, keys))
			got, err := m.VerifyService(ctx, auth.AdminServiceID, keys.Admin.Secret)
			require.NoError(t, err, "the admin file logs in again")
			assert.ElementsMatch(t, auth.AllPermissions, got.Permissions)
			_, err = m.VerifyService(ctx, auth.AdminServiceID, "attacker-chosen-secret-0123456789")
			assert.ErrorIs(t, err, bus.ErrUnauthenticated)
		})
	}
}
