package client_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/client"
)

const testSecret = "s3cret-0123456789abcdef"

// writeFile writes data to a new file of mode perm and returns its path.
func writeFile(tb testing.TB, name, data string, perm os.FileMode) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	require.NoError(tb, os.WriteFile(path, []byte(data), perm))
	require.NoError(tb, os.Chmod(path, perm)) // past the umask
	return path
}

// natsCreds returns a NATS credentials file of a user named name, as the
// bus writes in accounts mode.
func natsCreds(tb testing.TB, name string) string {
	tb.Helper()
	account, err := nkeys.CreateAccount()
	require.NoError(tb, err)
	user, err := nkeys.CreateUser()
	require.NoError(tb, err)
	pub, err := user.PublicKey()
	require.NoError(tb, err)
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	token, err := uc.Encode(account)
	require.NoError(tb, err)
	seed, err := user.Seed()
	require.NoError(tb, err)
	creds, err := jwt.FormatUserConfig(token, seed)
	require.NoError(tb, err)
	return string(creds)
}

func TestLoadServiceCreds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		giveData string
		givePerm os.FileMode
		want     client.ServiceCreds
		wantErr  bool
	}{
		{name: "valid", giveData: `{"service_id": "pay-api", "secret": "` + testSecret + `"}`, givePerm: 0o600,
			want: client.ServiceCreds{ServiceID: "pay-api", Secret: testSecret}},
		{name: "owner read only", giveData: `{"service_id": "pay-api", "secret": "x"}`, givePerm: 0o400,
			want: client.ServiceCreds{ServiceID: "pay-api", Secret: "x"}},
		{name: "group readable", giveData: `{"service_id": "pay-api", "secret": "` + testSecret + `"}`, givePerm: 0o640, wantErr: true},
		{name: "not json", giveData: `service_id=pay-api secret=` + testSecret, givePerm: 0o600, wantErr: true},
		{name: "no secret", giveData: `{"service_id": "pay-api"}`, givePerm: 0o600, wantErr: true},
		{name: "bad service id", giveData: `{"service_id": "pay.api", "secret": "` + testSecret + `"}`, givePerm: 0o600, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := client.LoadServiceCreds(writeFile(t, "creds.json", tt.giveData, tt.givePerm))
			if tt.wantErr {
				require.ErrorIs(t, err, client.ErrCredsFile)
				assert.NotContains(t, err.Error(), testSecret)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	_, err := client.LoadServiceCreds(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, client.ErrCredsFile)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestServiceCreds_Redacted(t *testing.T) {
	t.Parallel()
	c := client.ServiceCreds{ServiceID: "pay-api", Secret: testSecret}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("login", "creds", c)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("login", "creds", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c),
		fmt.Sprintf("%q", c), fmt.Sprint(&c), fmt.Sprintf("%+v", []client.ServiceCreds{c}), logged.String()} {
		assert.NotContains(t, s, testSecret)
		assert.Contains(t, s, "pay-api")
	}
	assert.Equal(t, "client.ServiceCreds{pay-api [REDACTED]}", c.String())
}

func TestServiceCreds_NATSOptions(t *testing.T) {
	t.Parallel()
	o := applyOptions(t, client.ServiceCreds{ServiceID: "pay-api", Secret: testSecret}.NATSOptions())
	assert.Equal(t, "pay-api", o.User)
	assert.Equal(t, testSecret, o.Password)
	assert.Equal(t, "_INBOX_pay-api", o.InboxPrefix)
}

func TestIsNATSCreds(t *testing.T) {
	t.Parallel()
	assert.True(t, client.IsNATSCreds([]byte(natsCreds(t, "pay-api"))))
	assert.False(t, client.IsNATSCreds([]byte(`{"service_id": "pay-api", "secret": "x"}`)))
}

func TestCredsFileOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveData  string
		givePerm  os.FileMode
		wantID    string
		wantUser  string // the password login of a bus credentials file
		wantInbox string // "": nats.go's default
		wantJWT   bool   // a user JWT login
		wantErr   bool
	}{
		{name: "bus credentials", giveData: `{"service_id": "pay-api", "secret": "` + testSecret + `"}`, givePerm: 0o600,
			wantID: "pay-api", wantUser: "pay-api", wantInbox: "_INBOX_pay-api"},
		{name: "nats credentials", giveData: natsCreds(t, "pay-api"), givePerm: 0o600,
			wantID: "pay-api", wantJWT: true},
		{name: "nats user not a service", giveData: natsCreds(t, "pay api"), givePerm: 0o600, wantErr: true},
		{name: "broken nats credentials", giveData: "-----BEGIN NATS USER JWT-----\nnope\n", givePerm: 0o600, wantErr: true},
		{name: "bus credentials others read", giveData: `{"service_id": "pay-api", "secret": "x"}`, givePerm: 0o644, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, id, err := client.CredsFileOptions(writeFile(t, "creds", tt.giveData, tt.givePerm))
			if tt.wantErr {
				require.ErrorIs(t, err, client.ErrCredsFile)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantID, id)
			o := applyOptions(t, opts)
			assert.Equal(t, tt.wantUser, o.User)
			assert.Equal(t, tt.wantInbox, o.InboxPrefix)
			assert.Equal(t, tt.wantJWT, o.UserJWT != nil)
		})
	}

	_, _, err := client.CredsFileOptions(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, client.ErrCredsFile)
}
