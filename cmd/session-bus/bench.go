package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/app"
	"github.com/session-bus/session-bus/internal/loadgen"
	"github.com/session-bus/session-bus/kvstore"
)

// benchServiceID is the service bench acts as when its login names none.
const benchServiceID = "bench"

// benchFlags are bench's own flags, beside the bus flags.
type benchFlags struct {
	fs                        *pflag.FlagSet
	conn                      *busFlags
	cfg                       loadgen.Config
	tests, mix                string
	embedded, baseline        bool
	authMode, dataDir, bucket string
	baselineCreds             string
	timeout                   time.Duration
	asJSON, quiet             bool
	statusOut                 io.Writer // stderr: the status line and the embedded bus's warnings
}

// newBenchCmd is 'bench': a load generator, like nats bench and
// redis-benchmark, against a running bus or one it starts.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load on a bus and print throughput and latency per operation",
		Long: `Generate load on a bus and print throughput and latency per operation.

Each operation of --tests runs as a phase of its own, in order; --mix runs
one phase of weighted operations instead (get=90,set-attribute=10). Every
phase runs --count calls, or for --duration, on --clients goroutines, as fast
as they go or at --rate calls per second in total (open loop: latency counts
from when a call was due). The sessions reads need are created first and
not measured: a pool of --sessions, --login-sessions to a login (what list
returns), --other-sessions of other logins; deletes delete sessions created
for them. Operations: ` + strings.Join(loadgen.OpNames(), ", ") + `.

The bus: --embedded starts one in a temporary data dir (--auth accounts or
none) and stops it at the end; otherwise bench connects to --nats-url.
` + loginHelp + `
Without one it logs in with <data-dir>/auth/admin.creds when that exists.

--baseline also measures raw JetStream kv.Get and kv.Put, with the same load,
on a temporary bucket configured as the sessions bucket, and prints each
operation's ratio to them. It needs the rights of the bus's account: with
--embedded it has them; against a running bus it takes --baseline-creds, or
the keys of <data-dir> in accounts mode, else the login above.

A progress line goes to stderr, the table (or --json) to stdout. Calls that
fail are counted and shown; bench exits 0 when it ran, 1 when it could not
connect or prepare, 2 on a usage error. See docs/BENCH.md.`,
		Args: usageArgs(cobra.NoArgs),
	}
	b := &benchFlags{fs: cmd.Flags(), cfg: loadgen.DefaultConfig()}
	b.conn = newBusFlags(b.fs, false)
	fs, f := b.fs, envFlags{b.fs}
	fs.StringVarP(&b.tests, "tests", "t", strings.Join(loadgen.OpNames(), ","), "operations to run, each as a phase of its own, in this order")
	f.bind("tests", "BENCH_TESTS")
	f.str(&b.mix, "mix", "BENCH_MIX", "", "run one phase of these operations instead, each with its share of the calls: op=weight,... (get=90,set-attribute=10)")
	fs.IntVarP(&b.cfg.Clients, "clients", "c", b.cfg.Clients, "concurrent clients (goroutines)")
	f.bind("clients", "BENCH_CLIENTS")
	fs.IntVarP(&b.cfg.Count, "count", "n", 0, "calls per phase; 0 runs each phase for --duration")
	f.bind("count", "BENCH_COUNT")
	fs.DurationVarP(&b.cfg.Duration, "duration", "d", b.cfg.Duration, "how long each phase runs, without --count")
	f.bind("duration", "BENCH_DURATION")
	fs.Float64Var(&b.cfg.Rate, "rate", 0, "calls per second of each phase, over all clients, open loop; 0 as fast as the clients go")
	f.bind("rate", "BENCH_RATE")
	f.num(&b.cfg.Sessions, "sessions", "BENCH_SESSIONS", b.cfg.Sessions, "sessions created before the first phase that reads or changes existing sessions, which spread over them")
	f.num(&b.cfg.LoginSessions, "login-sessions", "BENCH_LOGIN_SESSIONS", b.cfg.LoginSessions, "how many of those sessions share a login: what list returns")
	f.num(&b.cfg.OtherSessions, "other-sessions", "BENCH_OTHER_SESSIONS", 0, "sessions of other logins created first, to measure list among many sessions")
	f.num(&b.cfg.DeleteSessions, "delete-sessions", "BENCH_DELETE_SESSIONS", b.cfg.DeleteSessions, "sessions created for the deletes of a --duration phase without --rate; the phase ends when they are used up")
	f.dur(&b.timeout, "timeout", "BENCH_TIMEOUT", client.DefaultTimeout, "timeout of each call")
	f.boolean(&b.asJSON, "json", "BENCH_JSON", false, "print one JSON document instead of the table (docs/BENCH.md)")
	f.boolean(&b.quiet, "quiet", "BENCH_QUIET", false, "print no status or progress line on stderr (the embedded bus's warnings still go there)")
	f.boolean(&b.embedded, "embedded", "BENCH_EMBEDDED", false, "start a bus in a temporary data dir, measure it, and stop it")
	f.str(&b.authMode, "auth", "BENCH_AUTH", string(app.AuthAccounts), "with --embedded: the bus's auth mode, accounts or none")
	f.boolean(&b.baseline, "baseline", "BENCH_BASELINE", false, "also measure raw JetStream kv.Get and kv.Put on the sessions bucket's server, and compare")
	f.str(&b.baselineCreds, "baseline-creds", "BENCH_BASELINE_CREDS", "", "with --baseline against a running bus: a NATS creds file of a user of the account of the sessions bucket")
	f.str(&b.dataDir, "data-dir", "DATA_DIR", app.DefaultConfig().DataDir, "data dir of the running bus: its admin login, and with --baseline its account keys")
	f.str(&b.bucket, "bucket", "BUCKET", kvstore.DefaultConfig().Bucket, "KV bucket of sessions, for --baseline")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := b.check(); err != nil {
			return err
		}
		b.statusOut = cmd.ErrOrStderr()
		if !b.quiet {
			b.cfg.Progress = cmd.ErrOrStderr()
			b.cfg.ProgressRewrite = isTerminal(cmd.ErrOrStderr())
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return b.run(ctx, cmd.OutOrStdout())
	}
	return cmd
}

// given reports whether the flag name was set, on the command line or by
// its variable.
func (b *benchFlags) given(name string) bool {
	fl := b.fs.Lookup(name)
	if fl.Changed {
		return true
	}
	vars := fl.Annotations[envAnnotation]
	return len(vars) == 1 && os.Getenv(vars[0]) != ""
}

// check turns the flags into b.cfg, or returns a usage error.
func (b *benchFlags) check() error {
	switch {
	case b.mix != "" && b.given("tests"):
		return usagef("--tests and --mix: give one")
	case b.cfg.Count > 0 && b.given("duration"):
		return usagef("--count and --duration: give one")
	case b.cfg.Clients < 1:
		return b.invalid("clients", "want at least 1")
	case b.cfg.Count < 0:
		return b.invalid("count", "want 0 or more")
	case b.cfg.Count == 0 && b.cfg.Duration <= 0:
		return b.invalid("duration", "want a positive duration")
	case b.cfg.Rate < 0:
		return b.invalid("rate", "want 0 or more calls per second")
	case b.cfg.Sessions < 1:
		return b.invalid("sessions", "want at least 1")
	case b.cfg.LoginSessions < 1:
		return b.invalid("login-sessions", "want at least 1")
	case b.cfg.OtherSessions < 0:
		return b.invalid("other-sessions", "want 0 or more")
	case b.cfg.DeleteSessions < 1:
		return b.invalid("delete-sessions", "want at least 1")
	case b.timeout <= 0:
		return b.invalid("timeout", "want a positive duration")
	case b.baselineCreds != "" && !b.baseline:
		return usagef("--baseline-creds needs --baseline")
	}
	if b.embedded {
		if mode := app.AuthMode(b.authMode); mode != app.AuthAccounts && mode != app.AuthNone {
			return b.invalid("auth", fmt.Sprintf("want accounts or none, not %q", b.authMode))
		}
		// The command line may not aim an embedded run elsewhere; the
		// environment's settings for other commands are ignored.
		for _, name := range []string{"nats-url", "nats-creds", "nats-user", "service-creds", "admin-creds",
			"tls-ca", "tls-client-cert", "tls-client-key", "data-dir", "bucket", "baseline-creds"} {
			if b.fs.Lookup(name).Changed {
				return usagef("--%s: --embedded measures a bus of its own", name)
			}
		}
	} else if b.fs.Lookup("auth").Changed {
		return usagef("--auth goes with --embedded (a running bus has its own)")
	}
	var err error
	if b.mix != "" {
		var p loadgen.Phase
		p, err = loadgen.ParseMix(b.mix)
		b.cfg.Phases = []loadgen.Phase{p}
		if err != nil {
			return b.invalid("mix", err.Error())
		}
	} else if b.cfg.Phases, err = loadgen.ParseTests(b.tests); err != nil {
		return b.invalid("tests", err.Error())
	}
	if err := b.cfg.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

func (b *benchFlags) invalid(name, msg string) error {
	msg = strings.TrimPrefix(msg, loadgen.ErrInvalidConfig.Error()+": ")
	return usageError{fmt.Errorf("%s: %s", origin(b.fs.Lookup(name)), msg)}
}

// run connects (or starts the bus), runs the load, and prints the report.
func (b *benchFlags) run(ctx context.Context, out io.Writer) (err error) {
	var t benchTarget
	if b.embedded {
		err = b.startEmbedded(ctx, &t)
	} else {
		err = b.connectRunning(&t)
	}
	defer func() { err = errors.Join(err, t.close()) }()
	if err != nil {
		return err
	}
	target := loadgen.Target{Client: func(opts ...client.Option) (bus.Sessions, error) {
		base := []client.Option{client.WithServiceID(t.serviceID), client.WithTimeout(b.timeout)}
		return client.New(t.nc, append(base, opts...)...)
	}}
	if b.baseline {
		js, err := jetstream.New(t.baselineConn())
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		target.Baseline = &loadgen.Baseline{JetStream: js, Bucket: b.bucket}
	}
	if !b.quiet {
		fmt.Fprintf(b.statusOut, "bench: %s as %s, %s\n", t.describe, t.serviceID, b.describeLoad())
	}
	rep, err := loadgen.Run(ctx, b.cfg, target)
	if rep != nil {
		rep.Target, rep.Auth = t.name, t.auth
		if perr := b.print(out, rep); perr != nil {
			return perr
		}
	}
	if err != nil && ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}

func (b *benchFlags) describeLoad() string {
	s := fmt.Sprintf("%d clients, ", b.cfg.Clients)
	if b.cfg.Count > 0 {
		s += fmt.Sprintf("%d calls a phase", b.cfg.Count)
	} else {
		s += fmt.Sprintf("%v a phase", b.cfg.Duration)
	}
	if b.cfg.Rate > 0 {
		s += fmt.Sprintf(" at %g calls/s", b.cfg.Rate)
	}
	return s
}

func (b *benchFlags) print(out io.Writer, rep *loadgen.Report) error {
	if !b.asJSON {
		return rep.WriteTable(out)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// benchTarget is the bus bench measures and its connections.
type benchTarget struct {
	name, auth, describe string
	nc                   *nats.Conn // the clients'
	serviceID            string
	baseline             *nats.Conn // nil: the baseline uses nc
	app                  *app.App   // --embedded
	tempDir              string
}

func (t *benchTarget) baselineConn() *nats.Conn { return cmp.Or(t.baseline, t.nc) }

// close closes the connections, stops the embedded bus and removes its data.
func (t *benchTarget) close() error {
	if t.baseline != nil {
		t.baseline.Close()
	}
	if t.nc != nil {
		t.nc.Close()
	}
	var errs []error
	if t.app != nil {
		if err := t.app.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the embedded bus: %w", err))
		}
	}
	if t.tempDir != "" {
		errs = append(errs, os.RemoveAll(t.tempDir))
	}
	return errors.Join(errs...)
}

// startEmbedded starts a bus with its data in a temporary dir and
// connects to it as its admin (accounts mode) or as bench (none), over
// TCP as a service would.
func (b *benchFlags) startEmbedded(ctx context.Context, t *benchTarget) error {
	dir, err := os.MkdirTemp("", "session-bus-bench-")
	if err != nil {
		return err
	}
	t.tempDir = dir
	cfg := app.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", dir, app.AuthMode(b.authMode)
	log := slog.New(slog.NewTextHandler(b.statusOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if t.app, err = app.Start(ctx, cfg, log); err != nil {
		return fmt.Errorf("start the embedded bus: %w", err)
	}
	url := t.app.ClientURL()
	t.name, t.auth = "embedded", b.authMode
	t.describe = fmt.Sprintf("embedded bus (auth %s) at %s", b.authMode, url)
	opts := []nats.Option{nats.Name("session-bus-bench")}
	t.serviceID = benchServiceID
	if creds := t.app.AdminCredsPath(); creds != "" {
		credsOpts, id, err := client.CredsFileOptions(creds)
		if err != nil {
			return err
		}
		opts, t.serviceID = append(opts, credsOpts...), id
	}
	if t.nc, err = nats.Connect(url, opts...); err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
	}
	if b.baseline {
		return b.connectBaseline(t, url, dir, nil)
	}
	return nil
}

// connectRunning connects to the bus at --nats-url with the login given,
// else the admin login of --data-dir when it exists, else none.
func (b *benchFlags) connectRunning(t *benchTarget) error {
	fl, err := b.conn.login()
	if err != nil {
		return err
	}
	if fl == nil {
		if admin := auth.AdminCredsPath(b.dataDir); fileExists(admin) {
			b.conn.adminCreds = admin
		}
	}
	if t.nc, t.serviceID, err = b.conn.connect(); err != nil {
		return err
	}
	t.serviceID = cmp.Or(t.serviceID, benchServiceID)
	t.name = b.conn.url
	t.describe = "bus at " + b.conn.url
	if !b.baseline {
		return nil
	}
	var tlsOpts []nats.Option
	if b.conn.tlsCA != "" {
		tlsOpts = append(tlsOpts, nats.RootCAs(b.conn.tlsCA))
	}
	if b.conn.tlsCert != "" {
		tlsOpts = append(tlsOpts, nats.ClientCert(b.conn.tlsCert, b.conn.tlsKey))
	}
	return b.connectBaseline(t, b.conn.url, b.dataDir, tlsOpts)
}

// connectBaseline connects the baseline in the account of the sessions
// bucket: with --baseline-creds; else, when dataDir is in accounts mode,
// as a new user of the bus account signed with its key there; else it
// shares the clients' connection (a NATS without accounts).
func (b *benchFlags) connectBaseline(t *benchTarget, url, dataDir string, opts []nats.Option) error {
	opts = append(opts, nats.Name("session-bus-bench-baseline"))
	switch {
	case b.baselineCreds != "":
		opts = append(opts, nats.UserCredentials(b.baselineCreds))
	case fileExists(auth.AdminCredsPath(dataDir)): // accounts mode; its keys are beside
		keys, err := auth.BootstrapOperator(dataDir)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		user, err := keys.BusUser()
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		opts = append(opts, user)
	default:
		return nil
	}
	var err error
	if t.baseline, err = nats.Connect(url, opts...); err != nil {
		return fmt.Errorf("baseline: connect to %s: %w", url, err)
	}
	return nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// isTerminal reports whether w is a terminal, where a progress line can be
// rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
