package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
	"github.com/session-bus/session-bus/sessioncache"
)

// App is a running session-bus process.
type App struct {
	cfg     Config
	log     *slog.Logger
	ns      *server.Server // nil with an external NATS
	nc      *nats.Conn
	store   *kvstore.Store
	manager *bus.Manager
	service *natsapi.Server
	relay   *events.Relay
	// stopCache ends this process's change notices and its own cache.
	stopCache func()
	auditor   *events.Auditor
	keys      *auth.Keys // callout mode only
	sys       *nats.Conn // system account connection, for revoking logins
	callout   *auth.Callout

	opKeys     *auth.OperatorKeys // accounts mode only
	accounts   *auth.Accounts
	adminCreds string // accounts mode: the admin's .creds file
	adminNew   bool
	stopSweep  context.CancelFunc // accounts mode: ends the rotation sweeps
	sweepDone  chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start starts everything in order: auth keys, NATS (embedded or
// external), store, event relay and auditor, manager, service, and the auth
// callout. On failure it stops what it started.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log.With("component", "app")}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	var connOpts []nats.Option
	switch cfg.Auth {
	case AuthCallout:
		if a.keys, err = auth.Bootstrap(cfg.DataDir); err != nil {
			return nil, err
		}
		connOpts = a.keys.BusConnectOptions()
	case AuthAccounts:
		if a.opKeys, err = auth.BootstrapOperator(cfg.DataDir); err != nil {
			return nil, err
		}
		if err = moveGlobalAccountData(cfg.DataDir, a.opKeys.BusAccount(), a.log); err != nil {
			return nil, err
		}
		busUser, err := a.opKeys.BusUser()
		if err != nil {
			return nil, err
		}
		connOpts = []nats.Option{busUser}
	}
	url := cfg.NATSURL
	if url == "" {
		if a.ns, err = startEmbedded(cfg, a.keys, a.opKeys); err != nil {
			return nil, err
		}
		// The bus talks to its own server in process: no socket, no TLS
		// (a tls:// URL would make the client insist on a handshake).
		url = strings.Replace(a.ns.ClientURL(), "tls://", "nats://", 1)
		connOpts = append(connOpts, nats.InProcessServer(a.ns))
	} else if cfg.Auth == AuthNone {
		connOpts = externalAuth(cfg)
	}
	// With an external server in operator mode, the bus logs in as a user
	// of its BUS account, minted from the keys in the data dir, like every
	// bus process sharing them; it pushes that account first, so that it
	// also joins an operator it does not run (nothing preloads the account
	// there).
	if cfg.Auth == AuthAccounts {
		if err = a.connectSystem(url); err != nil {
			return nil, err
		}
		if a.ns == nil {
			if err = auth.PushBusAccount(ctx, a.sys, a.opKeys); err != nil {
				return nil, err
			}
		}
	}
	if a.nc, err = connect(url, connOpts); err != nil {
		return nil, err
	}
	js, err := jetstream.New(a.nc, jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
		a.log.Warn("async publish failed", "subject", m.Subject, "err", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("app: jetstream: %w", err)
	}
	if cfg.TokenKey == nil && cfg.DataDir != "" {
		if cfg.TokenKey, err = loadTokenKey(ctx, js, cfg.DataDir, cfg.Store.Bucket); err != nil {
			return nil, err
		}
		if cfg.TokenKey == nil {
			a.log.Warn("token fingerprints use no key: the sessions bucket predates token.key; give every bus process --token-key once its sessions have ended")
		}
	}
	if a.store, err = kvstore.New(ctx, js, cfg.Store); err != nil {
		return nil, err
	}
	// Caches hear of every write from the process that made it, and from
	// the active relay as a backstop for writers that announce nothing.
	cacheOpts, notify, stopCache, err := sessioncache.ForBus(a.nc, cfg.CacheEntries, log.With("component", "cache"))
	if err != nil {
		return nil, err
	}
	a.stopCache = stopCache
	// Every instance runs a relay; one of them is active at a time.
	rcfg := events.DefaultRelayConfig()
	rcfg.Bucket, rcfg.Stream, rcfg.LeaseTTL, rcfg.Logger = cfg.Store.Bucket, cfg.Events, cfg.RelayLeaseTTL, log
	rcfg.Notify = notify
	if a.relay, err = events.NewRelay(a.store, js, rcfg); err != nil {
		return nil, err
	}
	if err = a.relay.Start(ctx); err != nil {
		return nil, err
	}
	if a.auditor, err = events.NewAuditor(ctx, js, cfg.Audit); err != nil {
		return nil, err
	}
	opts := append(cfg.managerOptions(), bus.WithLogger(log), bus.WithServiceAudit(a.recordService))
	var svcOpts []natsapi.Option
	if cfg.Auth == AuthAccounts {
		if err = a.startAccounts(url, js, log); err != nil {
			return nil, err
		}
		opts = append(opts, bus.WithAccounts(a.accounts))
		svcOpts = append(svcOpts, natsapi.WithCallers(a.accounts))
	}
	if cfg.AuditAccess {
		opts = append(opts, bus.WithAccessAudit(a.recordAccess))
	}
	opts = append(opts, cacheOpts...)
	if a.manager, err = bus.New(a.store, cfg.ServiceID, cfg.IdleTimeout, opts...); err != nil {
		return nil, err
	}
	svcOpts = append(svcOpts, natsapi.WithMaxInFlight(cfg.MaxInFlight), natsapi.WithLogger(log))
	if cfg.MaxInFlightPerCaller > 0 {
		svcOpts = append(svcOpts, natsapi.WithMaxInFlightPerCaller(cfg.MaxInFlightPerCaller))
	}
	if a.service, err = natsapi.New(a.nc, a.manager, svcOpts...); err != nil {
		return nil, err
	}
	switch cfg.Auth {
	case AuthCallout:
		if err = a.startAuth(ctx, url, log); err != nil {
			return nil, err
		}
	case AuthAccounts:
		a.adminCreds = auth.AdminCredsPath(cfg.DataDir)
		if a.adminNew, err = auth.EnsureAdminCreds(ctx, a.manager, a.accounts, a.adminCreds); err != nil {
			return nil, err
		}
		if err = auth.WatchFailedLogins(a.sys, func(host string) {
			a.manager.ReportFailedLogin(context.Background(), host)
		}); err != nil {
			return nil, err
		}
		if err = a.migrateServices(ctx); err != nil {
			return nil, err
		}
		if err = a.sweepRotations(ctx); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// connectSystem connects to the system account (operator mode).
func (a *App) connectSystem(url string) error {
	sysUser, err := a.opKeys.SystemUser()
	if err != nil {
		return err
	}
	sysOpts := []nats.Option{sysUser}
	if a.ns != nil {
		sysOpts = append(sysOpts, nats.InProcessServer(a.ns))
	}
	a.sys, err = connect(url, sysOpts)
	return err
}

// startAccounts sets up the service accounts (operator mode).
func (a *App) startAccounts(url string, js jetstream.JetStream, log *slog.Logger) error {
	dial := func(opts ...nats.Option) (*nats.Conn, error) {
		if a.ns != nil {
			opts = append(opts, nats.InProcessServer(a.ns))
		}
		return connect(url, opts)
	}
	var err error
	a.accounts, err = auth.NewAccounts(auth.AccountsConfig{Keys: a.opKeys, System: a.sys, Bus: js,
		Dial: dial, Services: a.store, Logger: log})
	return err
}

// sweepRotations carries out the revocations of rotations whose grace
// has ended, in every service account: at start, then every
// auth.SweepInterval until the app stops, so old credentials are revoked
// even when the process that rotated them is gone.
func (a *App) sweepRotations(ctx context.Context) error {
	sweep := func(ctx context.Context) error {
		creds, err := a.manager.ListServices(ctx)
		if err != nil {
			return err
		}
		var accounts []string
		for _, c := range creds {
			if c.Account != "" {
				accounts = append(accounts, c.Account)
			}
		}
		return a.accounts.Sweep(ctx, accounts)
	}
	if err := sweep(ctx); err != nil {
		return err
	}
	if err := a.refreshImports(ctx); err != nil {
		return err
	}
	loop, stop := context.WithCancel(context.Background())
	a.stopSweep, a.sweepDone = stop, make(chan struct{})
	go func() {
		defer close(a.sweepDone)
		t := time.NewTicker(auth.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-loop.Done():
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(loop, auth.SweepInterval)
				if err := sweep(ctx); err != nil && loop.Err() == nil {
					a.log.Warn("rotation sweep failed; the next one tries again", "err", err)
				}
				cancel()
			}
		}
	}()
	return nil
}

// refreshImports gives the accounts of services registered by an older
// release the imports their permissions grant today.
func (a *App) refreshImports(ctx context.Context) error {
	creds, err := a.manager.ListServices(ctx)
	if err != nil {
		return err
	}
	for _, c := range creds {
		if c.Account == "" {
			continue
		}
		if err := a.accounts.RefreshImports(ctx, c); err != nil {
			// The service keeps what it had; the next start tries again.
			a.log.Warn("could not bring a service account's imports up to date", "service_id", c.ServiceID, "err", err)
		}
	}
	return nil
}

// startAuth serves the auth callout, revokes removed services' logins, and
// makes sure the admin service exists.
func (a *App) startAuth(ctx context.Context, url string, log *slog.Logger) error {
	opts := []auth.Option{auth.WithLogger(log)}
	sysOpts := a.keys.SysConnectOptions()
	if a.ns != nil {
		sysOpts = append(sysOpts, nats.InProcessServer(a.ns))
	}
	sys, err := connect(url, sysOpts)
	if err != nil {
		// Without the system account, removal ends access when the
		// service's login token expires instead of at once.
		a.log.Warn("no system account connection: removed services keep access until their token expires", "err", err)
	} else {
		a.sys = sys
		opts = append(opts, auth.WithSystemConn(sys))
	}
	if a.callout, err = auth.New(a.nc, a.manager, a.keys.Config(), opts...); err != nil {
		return err
	}
	if err := a.callout.WatchRemovals(ctx, a.store.ServicesBucket()); err != nil {
		return err
	}
	if err := auth.EnsureAdmin(ctx, a.manager, a.keys); err != nil {
		return err
	}
	return nil
}

// AdminCredsPath is the admin credentials file, or "" with AuthNone.
func (a *App) AdminCredsPath() string {
	switch {
	case a.keys != nil:
		return a.keys.AdminPath
	case a.adminCreds != "":
		return a.adminCreds
	}
	return ""
}

// AdminCredsCreated reports whether this start created the admin
// credentials (print their path once).
func (a *App) AdminCredsCreated() bool { return (a.keys != nil && a.keys.Created) || a.adminNew }

func startEmbedded(cfg Config, keys *auth.Keys, opKeys *auth.OperatorKeys) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %w", ErrInvalidConfig, cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen port %q", ErrInvalidConfig, portStr)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("app: data dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "session-bus",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: cfg.Sync == SyncAlways,
		NoSigs:     true, // the process handles signals itself
		NoLog:      true,
		// A client that does not read is cut off before it holds more.
		MaxPending:    cfg.MaxPendingBytes,
		WriteDeadline: cfg.WriteDeadline,
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
			CaFile: cfg.TLSClientCA, Verify: cfg.TLSClientCA != ""})
		if err != nil {
			return nil, fmt.Errorf("%w: tls: %w", ErrInvalidConfig, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, cfg.TLSClientCA != "", 2
	}
	switch {
	case keys != nil:
		if opts, err = auth.ServerOptions(opts, keys); err != nil {
			return nil, err
		}
	case opKeys != nil:
		if opts, err = auth.OperatorServerOptions(opts, opKeys); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("app: embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("app: embedded nats did not start (is the port in use?)")
	}
	return ns, nil
}

// externalAuth returns the credentials given for an external NATS.
func externalAuth(cfg Config) []nats.Option {
	switch {
	case cfg.NATSCreds != "":
		return []nats.Option{nats.UserCredentials(cfg.NATSCreds)}
	case cfg.NATSUser != "":
		return []nats.Option{nats.UserInfo(cfg.NATSUser, cfg.NATSPassword)}
	}
	return nil
}

func connect(url string, extra []nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name("session-bus"), nats.MaxReconnects(-1)}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("app: connect %s: %w", url, err)
	}
	return nc, nil
}

// ClientURL is where services connect.
func (a *App) ClientURL() string {
	if a.ns != nil {
		return a.ns.ClientURL()
	}
	return a.nc.ConnectedUrlRedacted()
}

// DataDir is the embedded server's JetStream directory, or "" with an
// external NATS.
func (a *App) DataDir() string {
	if a.ns == nil {
		return ""
	}
	return a.ns.JetStreamConfig().StoreDir
}

// Manager returns the session manager.
func (a *App) Manager() *bus.Manager { return a.manager }

// Close stops in reverse start order: the auth callout and the service
// drain (requests they took are answered), the relay stops (another
// instance's takes over) and the NATS connections drain, all within
// Config.ShutdownTimeout, past which the connections are closed at once;
// then the embedded server shuts down within Config.ServerShutdownTimeout.
// It returns [ErrShutdownTimeout] when a phase overran. Safe to call twice.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if err := within(a.cfg.ShutdownTimeout, "bus", a.stopParts); err != nil {
			errs = append(errs, err)
			a.closeConns() // ends whatever still waits on them
		}
		if a.ns != nil {
			errs = append(errs, within(a.cfg.ServerShutdownTimeout, "embedded server", func() error {
				a.ns.Shutdown()
				a.ns.WaitForShutdown()
				return nil
			}))
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// within runs stop and waits at most d for it. A stop that overruns keeps
// running on its own; it only ever sends on its buffered channel.
func within(d time.Duration, what string, stop func() error) error {
	done := make(chan error, 1)
	go func() { done <- stop() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: %s still stopping after %v", ErrShutdownTimeout, what, d)
	}
}

func (a *App) stopParts() error {
	var errs []error
	if a.callout != nil {
		errs = append(errs, a.callout.Close())
	}
	if a.service != nil {
		errs = append(errs, a.service.Close())
	}
	if a.stopSweep != nil {
		a.stopSweep()
		<-a.sweepDone
	}
	if a.accounts != nil { // after the service: no rotation is in flight
		a.accounts.Close()
	}
	if a.relay != nil {
		errs = append(errs, a.relay.Close())
	}
	if a.stopCache != nil { // after the last write and the relay's last notice
		a.stopCache()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.sys != nil {
		a.sys.Close()
	}
	if a.nc != nil {
		drained := make(chan struct{})
		a.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
		if err := a.nc.Drain(); err == nil {
			<-drained
		} else {
			a.nc.Close()
		}
	}
	return errors.Join(errs...)
}

func (a *App) closeConns() {
	if a.sys != nil {
		a.sys.Close()
	}
	if a.nc != nil {
		a.nc.Close()
	}
}

// recordService turns a registry change into an audit record. A failure is
// logged: the change itself has happened.
func (a *App) recordService(ctx context.Context, e bus.ServiceEvent) {
	if err := a.auditor.RecordService(ctx, e); err != nil {
		a.log.Warn("service audit failed", "service_id", e.ServiceID, "err", err)
	}
}

// recordAccess records a cross-service read without waiting for the ack.
func (a *App) recordAccess(_ context.Context, e bus.AccessEvent) {
	if err := a.auditor.RecordAsync(e); err != nil {
		a.log.Warn("access audit failed", "session_id", e.SessionID, "err", err)
	}
}
