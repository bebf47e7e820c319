package auth_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/client"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := auth.Bootstrap(dir)
	require.NoError(t, err)
	assert.True(t, k.Created)
	assert.Equal(t, auth.AdminServiceID, k.Admin.ServiceID)
	assert.Equal(t, filepath.Join(dir, "auth", "admin.json"), k.AdminPath)
	for _, name := range []string{"auth/keys.json", "auth/admin.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	fi, err := os.Stat(filepath.Join(dir, "auth"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	again, err := auth.Bootstrap(dir)
	require.NoError(t, err)
	assert.False(t, again.Created, "a second start loads the keys")
	pub1, _ := k.Issuer.PublicKey()
	pub2, _ := again.Issuer.PublicKey()
	assert.Equal(t, pub1, pub2)
	assert.Equal(t, k.BusPassword, again.BusPassword)
	assert.Equal(t, k.Admin, again.Admin)

	creds, err := client.LoadServiceCreds(k.AdminPath)
	require.NoError(t, err)
	assert.Equal(t, k.Admin, creds)

	// Formatting never shows a secret.
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprint(k.Admin), fmt.Sprintf("%#v", k.Admin)} {
		assert.NotContains(t, s, k.Admin.Secret)
		assert.NotContains(t, s, k.BusPassword)
	}

	require.NoError(t, os.Chmod(filepath.Join(dir, "auth", "keys.json"), 0o644))
	_, err = auth.Bootstrap(dir)
	require.ErrorIs(t, err, auth.ErrKeyFile, "a key file others can read is refused")
}

func TestServerConfig(t *testing.T) {
	t.Parallel()
	k, err := auth.Bootstrap(t.TempDir())
	require.NoError(t, err)
	text, err := auth.ServerConfig(k)
	require.NoError(t, err)
	assert.NotContains(t, text, k.BusPassword)
	assert.NotContains(t, text, k.SysPassword)

	path := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:-1\njetstream { store_dir: "+fmt.Sprintf("%q", t.TempDir())+" }\n"+text), 0o600))
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err)
	issuer, _ := k.Issuer.PublicKey()
	xkey, _ := k.XKey.PublicKey()
	require.NotNil(t, opts.AuthCallout)
	assert.Equal(t, issuer, opts.AuthCallout.Issuer)
	assert.Equal(t, xkey, opts.AuthCallout.XKey)
	assert.ElementsMatch(t, []string{auth.BusUser, auth.SysUser}, opts.AuthCallout.AuthUsers)
	assert.Equal(t, auth.SystemAccount, opts.SystemAccount)
}

func TestServerOptions_RefusesOwnAuth(t *testing.T) {
	t.Parallel()
	k, err := auth.Bootstrap(t.TempDir())
	require.NoError(t, err)
	_, err = auth.ServerOptions(&server.Options{Username: "u", Password: "p"}, k)
	require.ErrorIs(t, err, auth.ErrInvalidConfig)
	_, err = auth.ServerOptions(nil, k)
	require.ErrorIs(t, err, auth.ErrInvalidConfig)
}
