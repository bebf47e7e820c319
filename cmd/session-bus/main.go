// Command session-bus runs the session bus: `session-bus serve` starts an
// embedded NATS server with JetStream (or joins an external NATS), creates
// its bucket and serves sessions over NATS request-reply. Its other
// commands talk to a running bus: `events tail`, `service add|list|rotate|remove`.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/session-bus/session-bus/internal/app"
	"github.com/session-bus/session-bus/natsapi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code: 0 ok, 1 a
// failure, 2 a usage error (unknown command, bad flag or argument, bad
// SESSION_BUS_* value). Errors are printed once, as "session-bus: <msg>".
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	if args == nil {
		args = []string{} // cobra would read os.Args
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "session-bus:", err)
	if ue := (usageError{}); errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// newRootCmd returns the command tree. Every command applies the
// SESSION_BUS_* variables of its flags before it runs.
func newRootCmd() *cobra.Command {
	root := group(&cobra.Command{
		Use:   "session-bus",
		Short: "Shared user sessions for microservices, over NATS",
		Long: `session-bus: shared user sessions for microservices, over NATS.

Every flag can also be set by the SESSION_BUS_* environment variable named
beside it in the command's --help; a flag on the command line wins.`,
		SilenceErrors:     true, // run prints them, once
		SilenceUsage:      true, // a failure is not a usage mistake; usage errors point to --help
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd.Flags()) },
	}, newServeCmd(), newEventsCmd(), newServiceCmd(), newAuthConfigCmd(), newBenchCmd(), newVersionCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  usageArgs(cobra.NoArgs),
		Run: func(cmd *cobra.Command, _ []string) {
			v := "session-bus " + natsapi.Version
			if info, ok := debug.ReadBuildInfo(); ok {
				v += " (" + info.GoVersion + ")"
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
		},
	}
}

// newServeCmd is 'serve': it runs the bus until SIGINT or SIGTERM.
func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the bus (on an embedded NATS server by default)",
		Args:  usageArgs(cobra.NoArgs),
	}
	cfg := app.DefaultConfig()
	var syncMode, storage, logFormat, logLevel, tokenKeyHex, authMode, attrKeys, attrKeyFile string
	f := envFlags{cmd.Flags()}
	f.str(&authMode, "auth", "AUTH", string(cfg.Auth), "callout: services log in with their bus credentials, the embedded server refuses anonymous connections (the bus is the server's auth callout); accounts: the embedded server in operator mode, every service in an account of its own logging in with a .creds file, the bus's data in an account no service can log in to; none: leave authentication to the NATS deployment")
	f.str(&cfg.NATSURL, "nats-url", "NATS_URL", "", "external NATS URL; empty runs an embedded server")
	f.str(&cfg.NATSCreds, "nats-creds", "NATS_CREDS", "", "creds file for the external NATS")
	f.str(&cfg.NATSUser, "nats-user", "NATS_USER", "", "user for the external NATS, password from $SESSION_BUS_NATS_PASSWORD only")
	f.str(&cfg.Listen, "listen", "LISTEN", cfg.Listen, "embedded server client address")
	f.str(&cfg.DataDir, "data-dir", "DATA_DIR", cfg.DataDir, "embedded server JetStream data directory")
	f.str(&cfg.TLSCert, "tls-cert", "TLS_CERT", "", "PEM certificate: the embedded server then takes TLS client connections only (tokens cross the wire)")
	f.str(&cfg.TLSKey, "tls-key", "TLS_KEY", "", "PEM private key of --tls-cert")
	f.str(&cfg.TLSClientCA, "tls-client-ca", "TLS_CLIENT_CA", "", "PEM CA: clients must present a certificate it signed")
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
	f.str(&attrKeys, "attribute-key", "ATTRIBUTE_KEY", "", "encrypt attribute values at rest (AES-GCM): id:hexkey[,id:hexkey...], the first sealing new values, the others opening older ones; the same on every instance (prefer the environment variable or --attribute-key-file)")
	f.str(&attrKeyFile, "attribute-key-file", "ATTRIBUTE_KEY_FILE", "", "read --attribute-key's value from this file (mode 0600 or stricter)")
	f.num(&cfg.MaxInFlight, "max-in-flight", "MAX_IN_FLIGHT", cfg.MaxInFlight, "concurrent requests per process; beyond it callers get 503")
	f.num(&cfg.CacheEntries, "cache-entries", "CACHE_ENTRIES", cfg.CacheEntries, "sessions the bus keeps in its coherent cache to answer reads without a store round trip (about 750 bytes each with three short attributes); 0 turns it off")
	f.num(&cfg.MaxInFlightPerCaller, "max-in-flight-per-caller", "MAX_IN_FLIGHT_PER_CALLER", 0, "one calling service's share of --max-in-flight, so its burst cannot fail others' requests; 0 for half")
	f.str(&cfg.Events.Name, "events-stream", "EVENTS_STREAM", cfg.Events.Name, "JetStream stream of session events (subjects session.>)")
	f.dur(&cfg.Events.MaxAge, "events-max-age", "EVENTS_MAX_AGE", cfg.Events.MaxAge, "how long events are kept: how long a durable listener may be down")
	f.dur(&cfg.Store.MaxEventLag, "max-event-lag", "MAX_EVENT_LAG", cfg.Store.MaxEventLag, "writes get 503 events_behind while the event relay's deliveries are older than this (keep it under the idle timeout)")
	f.dur(&cfg.RelayLeaseTTL, "relay-lease-ttl", "RELAY_LEASE_TTL", cfg.RelayLeaseTTL, "after an instance dies, another's event relay takes over within this")
	f.boolean(&cfg.AuditAccess, "audit-access", "AUDIT_ACCESS", false, "record every read of a session by a service other than its creator (stream SESSION_AUDIT)")
	f.dur(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, "graceful stop deadline of the bus's parts; past it their connections are closed")
	maxPendingMiB := int(cfg.MaxPendingBytes >> 20)
	f.num(&maxPendingMiB, "max-pending-mib", "MAX_PENDING_MIB", maxPendingMiB, "MiB the embedded server buffers for a client that does not read, before cutting it off (memory bound: connections x this)")
	f.dur(&cfg.WriteDeadline, "write-deadline", "WRITE_DEADLINE", cfg.WriteDeadline, "the embedded server cuts off a client whose socket blocks a write this long")
	f.dur(&cfg.ServerShutdownTimeout, "server-shutdown-timeout", "SERVER_SHUTDOWN_TIMEOUT", cfg.ServerShutdownTimeout, "stop deadline of the embedded server, after the bus's parts stopped: it writes every stream's and consumer's state")
	f.str(&logFormat, "log-format", "LOG_FORMAT", "text", "log format: text or json")
	f.str(&logLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg.NATSPassword = env("NATS_PASSWORD")
		cfg.Sync = app.SyncMode(syncMode)
		cfg.MaxPendingBytes = int64(maxPendingMiB) << 20
		cfg.Auth = app.AuthMode(authMode)
		if cfg.Auth == app.AuthCallout {
			fmt.Fprintln(cmd.ErrOrStderr(), "session-bus: warning: --auth callout does not isolate services from the bus's data (see README, Authentication); prefer --auth accounts")
		}
		cfg.Events.Replicas, cfg.Audit.Replicas = cfg.Store.Replicas, cfg.Store.Replicas
		switch storage {
		case "file":
			cfg.Store.Storage = jetstream.FileStorage
		case "memory":
			cfg.Store.Storage = jetstream.MemoryStorage
		default:
			return invalid(cmd, "storage", fmt.Errorf("want file or memory, not %q", storage))
		}
		if tokenKeyHex != "" {
			key, err := hex.DecodeString(tokenKeyHex)
			if err != nil {
				return invalid(cmd, "token-key", errors.New("not hex")) // the key itself stays out of the message
			}
			cfg.TokenKey = key
		}
		if attrKeyFile != "" {
			if attrKeys != "" {
				return usagef("--attribute-key and --attribute-key-file: give one")
			}
			data, err := readSecretFile(attrKeyFile)
			if err != nil {
				return invalid(cmd, "attribute-key-file", err)
			}
			attrKeys = string(data)
		}
		if attrKeys != "" {
			id, keys, err := app.ParseAttributeKeys(attrKeys)
			if err != nil {
				return invalid(cmd, "attribute-key", err)
			}
			cfg.AttributeKeyID, cfg.AttributeKeys = id, keys
		}
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return invalid(cmd, "log-level", fmt.Errorf("want debug, info, warn or error, not %q", logLevel))
		}
		log, err := newLogger(cmd.ErrOrStderr(), logFormat, level)
		if err != nil {
			return invalid(cmd, "log-format", err)
		}
		return serve(cmd.Context(), cmd.OutOrStdout(), cfg, log)
	}
	return cmd
}

// serve starts the bus and runs it until SIGINT or SIGTERM; a second
// signal ends the process at once.
func serve(ctx context.Context, stdout io.Writer, cfg app.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("start: %w", err)
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
		return fmt.Errorf("stop: %w", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("want text or json, not %q", format)
}

// readSecretFile reads a key file, refusing one that group or others may
// read.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %v; want 0600", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}
