package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/app"
)

// result is what a command line did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs args in the environment env (see setEnv).
func runCLI(tb testing.TB, env []string, args ...string) result {
	tb.Helper()
	setEnv(tb, env)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// setEnv leaves no SESSION_BUS_* variable set but env ("NAME=value"
// pairs), until the test ends. Tests that call it cannot be parallel.
func setEnv(tb testing.TB, env []string) {
	tb.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix) {
			tb.Setenv(name, "") // restored when the test ends
			require.NoError(tb, os.Unsetenv(name))
		}
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		tb.Setenv(name, value)
	}
}

func TestCLI_UsageErrors(t *testing.T) {
	tests := []struct {
		name      string
		giveArgs  []string
		wantCode  int
		wantInErr string
	}{
		{name: "no command", giveArgs: nil, wantCode: 2, wantInErr: "missing command"},
		{name: "unknown command", giveArgs: []string{"serv"}, wantCode: 2, wantInErr: `unknown command "serv" for "session-bus"; did you mean serve`},
		{name: "unknown events command", giveArgs: []string{"events", "head"}, wantCode: 2, wantInErr: `unknown command "head"`},
		{name: "unknown service command", giveArgs: []string{"service", "delete", "x"}, wantCode: 2, wantInErr: `unknown command "delete"`},
		{name: "unknown flag", giveArgs: []string{"serve", "--idle", "1m"}, wantCode: 2, wantInErr: "unknown flag: --idle"},
		{name: "bad flag value", giveArgs: []string{"serve", "--idle-timeout", "xyz"}, wantCode: 2, wantInErr: `invalid argument "xyz" for "--idle-timeout"`},
		{name: "service add without id", giveArgs: []string{"service", "add", "--name", "Pay"}, wantCode: 2, wantInErr: "session-bus service add <service-id>"},
		{name: "service remove with two ids", giveArgs: []string{"service", "remove", "a", "b"}, wantCode: 2, wantInErr: "received 2"},
		{name: "bad --since", giveArgs: []string{"events", "tail", "--since", "yesterday"}, wantCode: 2, wantInErr: "--since: "},
		{name: "bad --storage", giveArgs: []string{"serve", "--storage", "disk"}, wantCode: 2, wantInErr: "--storage: want file or memory"},
		{name: "bad --service-id", giveArgs: []string{"service", "list", "--service-id", "a.b"}, wantCode: 2, wantInErr: "--service-id: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, nil, tt.giveArgs...)
			assert.Equal(t, tt.wantCode, got.code)
			assert.Contains(t, got.stderr, "session-bus: ")
			assert.Contains(t, got.stderr, tt.wantInErr)
			assert.Equal(t, 1, strings.Count(got.stderr, "session-bus: "), "the error is printed once:\n%s", got.stderr)
			assert.Contains(t, got.stderr, "--help' for usage.")
		})
	}
}

func TestCLI_Help(t *testing.T) {
	tests := []struct {
		giveArgs []string
		want     []string
	}{
		{giveArgs: []string{"--help"}, want: []string{"serve", "events", "service", "auth-config", "version", "SESSION_BUS_*"}},
		{giveArgs: []string{"serve", "--help"}, want: []string{
			"--nats-url string", "[$SESSION_BUS_NATS_URL]", "--idle-timeout duration", "[$SESSION_BUS_IDLE_TIMEOUT]",
			"--audit-access", "[$SESSION_BUS_AUDIT_ACCESS]", "--replicas int", "[$SESSION_BUS_REPLICAS]"}},
		{giveArgs: []string{"events", "tail", "--help"}, want: []string{"--since", "[$SESSION_BUS_TAIL_SINCE]", "--service-creds", "--admin-creds"}},
		{giveArgs: []string{"service", "add", "--help"}, want: []string{"add <service-id>", "--creds-out", "[$SESSION_BUS_CREDS_OUT]",
			"--nats-creds", "--nats-user", "--service-creds", "--admin-creds", "[$SESSION_BUS_ADMIN_CREDS]", defaultAdminCreds,
			"--service-id", "[$SESSION_BUS_CALLER_ID]"}},
		{giveArgs: []string{"service", "list", "--help"}, want: []string{"--json", "[$SESSION_BUS_LIST_JSON]"}},
		{giveArgs: []string{"help", "service"}, want: []string{"add", "list", "rotate", "remove"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.giveArgs, " "), func(t *testing.T) {
			got := runCLI(t, nil, tt.giveArgs...)
			require.Equal(t, 0, got.code, got.stderr)
			for _, want := range tt.want {
				assert.Contains(t, got.stdout, want)
			}
		})
	}
}

// TestCLI_BadEnv: a variable that does not parse is a usage error naming
// it, for every command, before anything connects.
func TestCLI_BadEnv(t *testing.T) {
	tests := []struct {
		name     string
		giveEnv  string
		giveArgs []string
	}{
		{name: "serve duration", giveEnv: "SESSION_BUS_IDLE_TIMEOUT=xyz", giveArgs: []string{"serve"}},
		{name: "serve int", giveEnv: "SESSION_BUS_MAX_SESSIONS=many", giveArgs: []string{"serve"}},
		{name: "serve bool", giveEnv: "SESSION_BUS_AUDIT_ACCESS=perhaps", giveArgs: []string{"serve"}},
		{name: "serve storage", giveEnv: "SESSION_BUS_STORAGE=disk", giveArgs: []string{"serve"}},
		{name: "serve log level", giveEnv: "SESSION_BUS_LOG_LEVEL=loud", giveArgs: []string{"serve"}},
		{name: "events tail since", giveEnv: "SESSION_BUS_TAIL_SINCE=yesterday", giveArgs: []string{"events", "tail"}},
		{name: "service list json", giveEnv: "SESSION_BUS_LIST_JSON=perhaps", giveArgs: []string{"service", "list"}},
		{name: "service list caller", giveEnv: "SESSION_BUS_CALLER_ID=a b", giveArgs: []string{"service", "list"}},
		{name: "service rotate grace", giveEnv: "SESSION_BUS_ROTATE_GRACE=long", giveArgs: []string{"service", "rotate", "pay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, []string{tt.giveEnv}, tt.giveArgs...)
			assert.Equal(t, 2, got.code, got.stderr)
			name, _, _ := strings.Cut(tt.giveEnv, "=")
			assert.Contains(t, got.stderr, "session-bus: $"+name+": ")
		})
	}
}

// TestCLI_ApplyEnv: the variable supplies a flag's value; the command line wins.
func TestCLI_ApplyEnv(t *testing.T) {
	tests := []struct {
		name     string
		giveEnv  []string
		giveArgs []string
		want     time.Duration
	}{
		{name: "default", want: time.Hour},
		{name: "env", giveEnv: []string{"SESSION_BUS_ROTATE_GRACE=2m"}, want: 2 * time.Minute},
		{name: "empty env", giveEnv: []string{"SESSION_BUS_ROTATE_GRACE="}, want: time.Hour},
		{name: "flag", giveArgs: []string{"--grace", "3s"}, want: 3 * time.Second},
		{name: "flag beats env", giveEnv: []string{"SESSION_BUS_ROTATE_GRACE=2m"}, giveArgs: []string{"--grace", "3s"}, want: 3 * time.Second},
		{name: "flag beats bad env", giveEnv: []string{"SESSION_BUS_ROTATE_GRACE=xyz"}, giveArgs: []string{"--grace=0s"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got time.Duration
			cmd := &cobra.Command{Use: "x", SilenceErrors: true, SilenceUsage: true,
				PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
				RunE:              func(*cobra.Command, []string) error { return nil }}
			envFlags{cmd.Flags()}.dur(&got, "grace", "ROTATE_GRACE", time.Hour, "grace")
			cmd.SetArgs(tt.giveArgs)
			setEnv(t, tt.giveEnv)
			require.NoError(t, cmd.Execute())
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestCLI_Logins: the login a command uses, and two logins refused.
func TestCLI_Logins(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	tests := []struct {
		name      string
		giveEnv   []string
		giveArgs  []string
		wantCode  int
		wantInErr string
	}{
		{name: "two login flags", giveArgs: []string{"service", "list", "--nats-creds", "x.creds", "--nats-user", "ops"},
			wantCode: 2, wantInErr: "conflicting logins --nats-creds, --nats-user: give one"},
		{name: "two bus credentials", giveArgs: []string{"events", "tail", "--service-creds", "a.json", "--admin-creds", "b.json"},
			wantCode: 2, wantInErr: "conflicting logins --service-creds, --admin-creds"},
		{name: "two logins in the environment", giveEnv: []string{"SESSION_BUS_NATS_USER=ops", "SESSION_BUS_ADMIN_CREDS=a.json"},
			giveArgs: []string{"service", "remove", "pay"},
			wantCode: 2, wantInErr: "conflicting logins $SESSION_BUS_NATS_USER, $SESSION_BUS_ADMIN_CREDS"},
		{name: "a login flag replaces the environment's", giveEnv: []string{"SESSION_BUS_NATS_USER=ops"},
			giveArgs: []string{"service", "list", "--admin-creds", missing}, wantCode: 1, wantInErr: missing},
		{name: "the admin file without a login", giveArgs: []string{"service", "list"},
			wantCode: 1, wantInErr: defaultAdminCreds},
		{name: "flag beats env", giveEnv: []string{"SESSION_BUS_SERVICE_CREDS=" + missing},
			giveArgs: []string{"events", "tail", "--service-creds", missing + ".other"}, wantCode: 1, wantInErr: missing + ".other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // no session-bus-data here
			got := runCLI(t, tt.giveEnv, tt.giveArgs...)
			assert.Equal(t, tt.wantCode, got.code, got.stderr)
			assert.Contains(t, got.stderr, tt.wantInErr)
		})
	}
}

// startBus runs the bus in-process on a random port, with its data in
// <temp dir>/session-bus-data, and returns its NATS URL and admin
// credentials file ("" with app.AuthNone).
func startBus(tb testing.TB, mode app.AuthMode) (url, adminCreds string) {
	tb.Helper()
	cfg := app.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", filepath.Join(tb.TempDir(), "session-bus-data"), mode
	a, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, a.Close()) })
	return a.ClientURL(), a.AdminCredsPath()
}

// adminSecret reads the secret of the admin credentials file.
func adminSecret(tb testing.TB, file string) string {
	tb.Helper()
	creds, err := client.LoadServiceCreds(file)
	require.NoError(tb, err)
	return creds.Secret
}

func TestCLI_ServiceAgainstBus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	url, admin := startBus(t, app.AuthCallout)
	t.Chdir(filepath.Join(filepath.Dir(admin), "..", "..")) // where session-bus-data/auth/admin.json is
	cli := func(args ...string) string {
		t.Helper()
		got := runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url}, args...)
		require.Equal(t, 0, got.code, "%v: %s", args, got.stderr)
		return got.stdout
	}
	credsFile := filepath.Join(t.TempDir(), "pay.json")
	// Flags after the id, and before it.
	cli("service", "add", "pay-api", "--admin-creds", admin, "--permissions", "session.read, events.subscribe", "--creds-out", credsFile)
	cli("service", "add", "--name", "Orders", "order-api") // the admin file by default
	creds, err := client.LoadServiceCreds(credsFile)
	require.NoError(t, err)
	assert.Equal(t, "pay-api", creds.ServiceID)

	var list bus.ServicesReply
	require.NoError(t, json.Unmarshal([]byte(cli("service", "list", "--json")), &list))
	ids := make(map[string]bus.ServiceCredential)
	for _, s := range list.Services {
		ids[s.ServiceID] = s
	}
	require.Contains(t, ids, "pay-api")
	assert.Equal(t, []string{"session.read", "events.subscribe"}, ids["pay-api"].Permissions)
	assert.Equal(t, "Orders", ids["order-api"].ServiceName)
	assert.Contains(t, ids, auth.AdminServiceID)

	table := strings.Split(strings.TrimSpace(cli("service", "list")), "\n")
	require.Len(t, table, len(list.Services)+1)
	assert.Regexp(t, `^SERVICE ID +NAME +PERMISSIONS +CREATED$`, table[0])
	rows := make(map[string][]string)
	for _, row := range table[1:] {
		cols := strings.Fields(row)
		rows[cols[0]] = cols
	}
	require.Len(t, rows["order-api"], 4)
	assert.Equal(t, []string{"order-api", "Orders", "-"}, rows["order-api"][:3], "no permissions: -")
	require.Len(t, rows["pay-api"], 4)
	assert.Equal(t, "session.read,events.subscribe", rows["pay-api"][2])
	_, err = time.Parse(time.RFC3339, rows["pay-api"][3])
	assert.NoError(t, err, "CREATED is RFC 3339")

	// The admin's id and secret as a NATS user and password.
	got := runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url, "SESSION_BUS_NATS_PASSWORD=" + adminSecret(t, admin)},
		"service", "list", "--json", "--nats-user", auth.AdminServiceID)
	require.Equal(t, 0, got.code, got.stderr)
	assert.Contains(t, got.stdout, `"service_id":"pay-api"`)

	// pay-api may not manage services: its own login is used, and refused.
	got = runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url}, "service", "list", "--service-creds", credsFile)
	assert.Equal(t, 1, got.code)
	assert.Contains(t, got.stderr, "session-bus: service list: ")
	assert.Equal(t, 1, strings.Count(got.stderr, "\n"), "one error line:\n%s", got.stderr)

}

// TestCLI_ServiceNATSUser: with a NATS that does its own auth (serve --auth
// none), the service commands log in with --nats-user, not the admin file.
// (Removal is tested here: with the auth callout, a removal makes the
// server list connections, which races with a new connection inside
// nats-server v2.15.2 under -race.)
func TestCLI_ServiceNATSUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	url, _ := startBus(t, app.AuthNone)
	t.Chdir(t.TempDir()) // no session-bus-data/auth/admin.json here
	env := []string{"SESSION_BUS_NATS_URL=" + url, "SESSION_BUS_NATS_USER=ops", "SESSION_BUS_NATS_PASSWORD=pw"}
	cli := func(args ...string) string {
		t.Helper()
		got := runCLI(t, env, args...)
		require.Equal(t, 0, got.code, "%v: %s", args, got.stderr)
		return got.stdout
	}
	assert.JSONEq(t, `{"services":[]}`, cli("service", "list", "--json"))
	assert.Equal(t, "SERVICE ID  NAME  PERMISSIONS  CREATED\n", cli("service", "list"))
	cli("service", "add", "pay-api", "--permissions", "session.read")
	assert.Contains(t, cli("service", "list", "--json"), `"service_id":"pay-api"`)
	cli("service", "remove", "pay-api")
	assert.JSONEq(t, `{"services":[]}`, cli("service", "list", "--json"))
}

// With --auth accounts, `service add --creds-out` writes a NATS .creds
// file that logs in as the service; the admin's admin.creds is the
// default login of the service commands.
func TestCLI_ServiceAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	url, admin := startBus(t, app.AuthAccounts)
	require.Equal(t, "admin.creds", filepath.Base(admin))
	t.Chdir(filepath.Join(filepath.Dir(admin), "..", "..")) // where session-bus-data/auth/admin.creds is
	cli := func(args ...string) result {
		t.Helper()
		return runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url}, args...)
	}
	credsFile := filepath.Join(t.TempDir(), "pay.creds")
	got := cli("service", "add", "pay-api", "--permissions", "session.read", "--creds-out", credsFile)
	require.Equal(t, 0, got.code, got.stderr)
	data, err := os.ReadFile(credsFile)
	require.NoError(t, err)
	require.True(t, client.IsNATSCreds(data), "a standard .creds file")
	fi, err := os.Stat(credsFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	got = cli("service", "list", "--json")
	require.Equal(t, 0, got.code, got.stderr)
	assert.Contains(t, got.stdout, `"service_id":"pay-api"`)
	got = cli("service", "list", "--service-creds", credsFile)
	assert.Equal(t, 1, got.code, "pay-api may not list services")
	assert.Contains(t, got.stderr, "permission denied")
}
