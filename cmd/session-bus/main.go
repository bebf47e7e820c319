// Command session-bus runs the session bus: `session-bus serve` starts an
// embedded NATS server with JetStream (or joins an external NATS), creates
// its bucket and serves sessions over NATS request-reply.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/app"
)

const usage = `session-bus: shared user sessions for microservices, over NATS.

Usage:
  session-bus serve [flags]         run the bus (embedded NATS by default)
  session-bus events tail [flags]   print session events live
  session-bus service add|list|rotate|remove   manage services (as admin)
  session-bus auth-config [--data-dir D]       nats-server config for an external server
  session-bus version               print the version

Run 'session-bus serve --help' for the flags; each can also be set by the
SESSION_BUS_* environment variable named beside it.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "events":
		if len(args) < 2 || args[1] != "tail" {
			fmt.Fprint(stderr, "usage: session-bus events tail [flags]\n")
			return 2
		}
		return eventsTail(args[2:], stdout, stderr)
	case "service":
		return serviceCmd(args[1:], stdout, stderr)
	case "auth-config":
		return authConfig(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "session-bus: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func version() string {
	v := "session-bus " + bus.ServiceVersion
	if info, ok := debug.ReadBuildInfo(); ok {
		v += " (" + info.GoVersion + ")"
	}
	return v
}

// env reads SESSION_BUS_<name>, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("SESSION_BUS_" + name); ok {
		return v
	}
	return def
}

// flags binds serve's flags to cfg, with defaults from the environment.
type flags struct {
	fs   *flag.FlagSet
	errs []error
}

// newFlags returns a flag set for a command that writes usage to stderr.
func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{fs: fs}
}

// parse parses args, and reports bad flags or environment variables. When
// ok is false the command exits with code (0 for --help).
func (f *flags) parse(args []string, stderr io.Writer) (code int, ok bool) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if len(f.errs) > 0 {
		fmt.Fprintln(stderr, "session-bus:", errors.Join(f.errs...))
		return 2, false
	}
	return 0, true
}

func (f *flags) str(p *string, name, envName, def, help string) {
	f.fs.StringVar(p, name, env(envName, def), help+" [$SESSION_BUS_"+envName+"]")
}

func (f *flags) dur(p *time.Duration, name, envName string, def time.Duration, help string) {
	d := def
	if v := env(envName, ""); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			f.errs = append(f.errs, fmt.Errorf("$SESSION_BUS_%s: %w", envName, err))
		}
	}
	f.fs.DurationVar(p, name, d, help+" [$SESSION_BUS_"+envName+"]")
}

func (f *flags) num(p *int, name, envName string, def int, help string) {
	n := def
	if v := env(envName, ""); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			f.errs = append(f.errs, fmt.Errorf("$SESSION_BUS_%s: %w", envName, err))
		}
	}
	f.fs.IntVar(p, name, n, help+" [$SESSION_BUS_"+envName+"]")
}

func (f *flags) boolean(p *bool, name, envName string, def bool, help string) {
	b := def
	if v := env(envName, ""); v != "" {
		var err error
		if b, err = strconv.ParseBool(v); err != nil {
			f.errs = append(f.errs, fmt.Errorf("$SESSION_BUS_%s: %w", envName, err))
		}
	}
	f.fs.BoolVar(p, name, b, help+" [$SESSION_BUS_"+envName+"]")
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg := app.DefaultConfig()
	f := newFlags("serve", stderr)
	var syncMode, storage, logFormat, logLevel, tokenKeyHex, authMode string
	f.str(&authMode, "auth", "AUTH", string(cfg.Auth), "callout: services log in with their bus credentials, the embedded server refuses anonymous connections (the bus is the server's auth callout); none: leave authentication to the NATS deployment")
	f.str(&cfg.NATSURL, "nats-url", "NATS_URL", "", "external NATS URL; empty runs an embedded server")
	f.str(&cfg.NATSCreds, "nats-creds", "NATS_CREDS", "", "creds file for the external NATS")
	f.str(&cfg.NATSUser, "nats-user", "NATS_USER", "", "user for the external NATS (password from $SESSION_BUS_NATS_PASSWORD only)")
	cfg.NATSPassword = env("NATS_PASSWORD", "")
	f.str(&cfg.Listen, "listen", "LISTEN", cfg.Listen, "embedded server client address")
	f.str(&cfg.DataDir, "data-dir", "DATA_DIR", cfg.DataDir, "embedded server JetStream data directory")
	f.str(&syncMode, "sync", "SYNC", string(cfg.Sync), "disk sync of the embedded server: default (fsync every 2 min; a power loss may drop acknowledged writes) or always (fsync each write; durable, several times the write cost)")
	f.str(&cfg.Store.Bucket, "bucket", "BUCKET", cfg.Store.Bucket, "KV bucket of sessions")
	f.str(&cfg.Store.ServicesBucket, "services-bucket", "SERVICES_BUCKET", cfg.Store.ServicesBucket, "KV bucket of service credentials")
	f.num(&cfg.Store.Replicas, "replicas", "REPLICAS", cfg.Store.Replicas, "replicas of each bucket and stream (3 on a cluster)")
	f.str(&storage, "storage", "STORAGE", "file", "JetStream storage of the buckets: file or memory")
	f.str(&cfg.ServiceID, "service-id", "SERVICE_ID", cfg.ServiceID, "the bus's own service id")
	f.dur(&cfg.IdleTimeout, "idle-timeout", "IDLE_TIMEOUT", cfg.IdleTimeout, "a session ends after this long without use")
	f.dur(&cfg.MaxLifetime, "max-lifetime", "MAX_LIFETIME", cfg.MaxLifetime, "a session ends this long after creation however it is used; 0 for no cap")
	f.dur(&cfg.TouchInterval, "touch-interval", "TOUCH_INTERVAL", 0, "a read extends a session at most once per interval; 0 for a tenth of the idle timeout")
	f.num(&cfg.MaxSessions, "max-sessions", "MAX_SESSIONS", 0, "sessions per login; 0 for no cap")
	f.str(&cfg.Evict, "max-sessions-policy", "MAX_SESSIONS_POLICY", cfg.Evict, "at max-sessions: evict (the oldest) or refuse (the new one)")
	f.str(&tokenKeyHex, "token-key", "TOKEN_KEY", "", "hex HMAC key for token fingerprints; the same on every instance (prefer the environment variable)")
	f.num(&cfg.MaxInFlight, "max-in-flight", "MAX_IN_FLIGHT", cfg.MaxInFlight, "concurrent requests per process; beyond it callers get 503")
	f.str(&cfg.Events.Name, "events-stream", "EVENTS_STREAM", cfg.Events.Name, "JetStream stream of session events (subjects session.>)")
	f.dur(&cfg.Events.MaxAge, "events-max-age", "EVENTS_MAX_AGE", cfg.Events.MaxAge, "how long events are kept: how long a durable listener may be down")
	f.dur(&cfg.RelayLeaseTTL, "relay-lease-ttl", "RELAY_LEASE_TTL", cfg.RelayLeaseTTL, "after an instance dies, another's event relay takes over within this")
	f.boolean(&cfg.AuditAccess, "audit-access", "AUDIT_ACCESS", false, "record every read of a session by a service other than its creator (stream SESSION_AUDIT)")
	f.dur(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, "graceful stop deadline")
	f.str(&logFormat, "log-format", "LOG_FORMAT", "text", "log format: text or json")
	f.str(&logLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	cfg.Sync = app.SyncMode(syncMode)
	cfg.Auth = app.AuthMode(authMode)
	cfg.Events.Replicas, cfg.Audit.Replicas = cfg.Store.Replicas, cfg.Store.Replicas
	switch storage {
	case "file":
		cfg.Store.Storage = jetstream.FileStorage
	case "memory":
		cfg.Store.Storage = jetstream.MemoryStorage
	default:
		fmt.Fprintf(stderr, "session-bus: storage must be file or memory, not %q\n", storage)
		return 2
	}
	if tokenKeyHex != "" {
		key, err := hex.DecodeString(tokenKeyHex)
		if err != nil {
			fmt.Fprintln(stderr, "session-bus: token key is not hex")
			return 2
		}
		cfg.TokenKey = key
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	log.Info("ready", "nats", a.ClientURL(), "data_dir", a.DataDir(), "bucket", cfg.Store.Bucket)
	if a.AdminCredsCreated() {
		fmt.Fprintf(stdout, "session-bus admin credentials written to %s (mode 0600; shown once)\n", a.AdminCredsPath())
	}
	if a.DataDir() != "" {
		fmt.Fprintf(stdout, "session-bus listening on %s, data in %s\n", a.ClientURL(), a.DataDir())
	} else {
		fmt.Fprintf(stdout, "session-bus serving on %s\n", a.ClientURL())
	}
	<-ctx.Done()
	stop() // a second signal now ends the process at once
	log.Info("stopping")
	if err := a.Close(); err != nil {
		log.Error("stop failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
