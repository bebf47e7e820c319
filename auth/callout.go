package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/session-bus/session-bus/bus"
)

// Subjects and names of the NATS auth callout protocol.
const (
	// CalloutSubject is where the NATS server sends authorization requests.
	CalloutSubject = "$SYS.REQ.USER.AUTH"
	// xkeyHeader carries the server's public xkey on an encrypted request.
	xkeyHeader = "Nats-Server-Xkey"
	// calloutQueue is the queue group of every bus process's callout, so
	// each login is answered once.
	calloutQueue = "session-bus-auth"
	// refusal is the only error a refused login is answered with.
	refusal = "not authorized"
)

// Defaults, set here and only here.
const (
	// DefaultTokenTTL is how long a user JWT lets a service stay connected
	// before the server makes it log in again.
	DefaultTokenTTL = 10 * time.Minute
	// DefaultAccount is the account services are placed in: the global
	// account, which holds the bus's JetStream assets.
	DefaultAccount = "$G"
	// DefaultMaxConcurrent bounds the logins one Callout checks at once
	// (each costs an argon2id hash).
	DefaultMaxConcurrent = 8
	// DefaultVerifyTimeout bounds one login check; keep it below the
	// server's auth timeout.
	DefaultVerifyTimeout = 3 * time.Second
)

// Verifier checks a service's secret; *bus.Manager is one. It must fail
// alike for an unknown id and a wrong secret.
type Verifier interface {
	VerifyService(ctx context.Context, serviceID, secret string) (bus.ServiceCredential, error)
}

var _ Verifier = (*bus.Manager)(nil)

// Config is what a [Callout] needs. [DefaultConfig] states every default;
// [Keys.Config] fills the keys from [Bootstrap].
type Config struct {
	// Issuer signs user JWTs and callout responses: an account key pair
	// whose public key is the server's auth_callout issuer. Required.
	Issuer nkeys.KeyPair
	// XKey is the curve key pair whose public key is the server's
	// auth_callout xkey: requests arrive encrypted to it and responses go
	// back encrypted. Optional; without it only plain requests are served.
	XKey nkeys.KeyPair
	// Account is the account services are placed in. Default [DefaultAccount].
	Account string
	// TokenTTL is the lifetime of a user JWT, at least 1 s; each is cut by
	// up to a tenth at random so that logins do not expire in step. When
	// it ends the server closes the connection and the client logs in
	// again, so a removed service loses access within TokenTTL even if no
	// revoke reached the server. Default [DefaultTokenTTL].
	TokenTTL time.Duration
	// EventsStream is the events stream events.subscribe grants.
	// Default [DefaultEventsStream].
	EventsStream string
}

// DefaultConfig returns the defaults stated on each [Config] field.
func DefaultConfig() Config {
	return Config{
		Account:      DefaultAccount,
		TokenTTL:     DefaultTokenTTL,
		EventsStream: DefaultEventsStream,
	}
}

// TestConfig returns DefaultConfig with fresh keys and a 2 s TokenTTL.
func TestConfig() Config {
	c := DefaultConfig()
	c.Issuer, _ = nkeys.CreateAccount()
	c.XKey, _ = nkeys.CreateCurveKeys()
	c.TokenTTL = 2 * time.Second
	return c
}

func (c Config) validate() error {
	if c.Issuer == nil {
		return fmt.Errorf("%w: issuer key is required", ErrInvalidConfig)
	}
	if pub, err := c.Issuer.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return fmt.Errorf("%w: issuer must be an account key", ErrInvalidConfig)
	}
	if _, err := c.Issuer.Seed(); err != nil {
		return fmt.Errorf("%w: issuer key has no seed", ErrInvalidConfig)
	}
	if c.XKey != nil {
		if pub, err := c.XKey.PublicKey(); err != nil || !nkeys.IsValidPublicCurveKey(pub) {
			return fmt.Errorf("%w: xkey must be a curve key", ErrInvalidConfig)
		}
	}
	switch {
	case c.Account == "":
		return fmt.Errorf("%w: account is required", ErrInvalidConfig)
	case c.TokenTTL < time.Second:
		return fmt.Errorf("%w: token TTL must be at least 1s", ErrInvalidConfig)
	case c.EventsStream == "":
		return fmt.Errorf("%w: events stream is required", ErrInvalidConfig)
	}
	return nil
}

type options struct {
	logger        *slog.Logger
	sys           *nats.Conn
	maxConcurrent int
	verifyTimeout time.Duration
	now           func() time.Time
}

// Option configures a [Callout].
type Option func(*options) error

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}

// WithSystemConn gives the Callout a connection of a system account user
// ([SysUser]), which [Callout.Revoke] needs to find and close connections.
// The Callout does not close it.
func WithSystemConn(nc *nats.Conn) Option {
	return func(o *options) error {
		if nc == nil {
			return fmt.Errorf("%w: nil system connection", ErrInvalidConfig)
		}
		o.sys = nc
		return nil
	}
}

// WithMaxConcurrent bounds the logins checked at once. Default
// [DefaultMaxConcurrent].
func WithMaxConcurrent(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max concurrent must be at least 1", ErrInvalidConfig)
		}
		o.maxConcurrent = n
		return nil
	}
}

// WithVerifyTimeout bounds one login check. Default [DefaultVerifyTimeout].
func WithVerifyTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: verify timeout must be positive", ErrInvalidConfig)
		}
		o.verifyTimeout = d
		return nil
	}
}

// Callout answers the NATS server's authorization requests for services.
// Create one with [New]; stop it with [Callout.Close].
type Callout struct {
	nc     *nats.Conn
	v      Verifier
	cfg    Config
	o      options
	log    *slog.Logger
	issuer string // public key of cfg.Issuer

	sub    *nats.Subscription
	sem    chan struct{}
	ctx    context.Context // canceled by Close: stops watchers
	cancel context.CancelFunc

	mu     sync.RWMutex
	closed bool // set by Close: no goroutine starts after it
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts answering authorization requests on nc, which must be a
// connection of a user the server exempts from the callout (its
// auth_users, e.g. [BusUser]) in the callout's account. Every bus process
// may run one: they share the work as a queue group.
// Errors: [ErrInvalidConfig], or the NATS error when subscribing fails.
func New(nc *nats.Conn, v Verifier, cfg Config, opts ...Option) (*Callout, error) {
	if nc == nil || v == nil {
		return nil, fmt.Errorf("%w: nil connection or verifier", ErrInvalidConfig)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := options{
		logger:        slog.Default(),
		maxConcurrent: DefaultMaxConcurrent,
		verifyTimeout: DefaultVerifyTimeout,
		now:           time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	issuer, _ := cfg.Issuer.PublicKey() // checked by validate
	c := &Callout{
		nc:     nc,
		v:      v,
		cfg:    cfg,
		o:      o,
		log:    o.logger.With("component", "auth"),
		issuer: issuer,
		sem:    make(chan struct{}, o.maxConcurrent),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	sub, err := nc.QueueSubscribe(CalloutSubject, calloutQueue, c.onRequest)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("auth: subscribe %s: %w", CalloutSubject, err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		c.cancel()
		return nil, fmt.Errorf("auth: subscribe %s: %w", CalloutSubject, err)
	}
	c.sub = sub
	c.log.Info("auth callout started", "account", cfg.Account, "token_ttl", cfg.TokenTTL, "encrypted", cfg.XKey != nil)
	return c, nil
}

// onRequest admits one request and checks it in its own goroutine, at most
// maxConcurrent at once; beyond that the subscription queues them.
func (c *Callout) onRequest(msg *nats.Msg) {
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	if !c.startWork() {
		<-c.sem
		return
	}
	go func() {
		defer func() {
			<-c.sem
			c.wg.Done()
		}()
		c.handle(msg)
	}()
}

// startWork registers a goroutine with the Callout, unless it is closed.
func (c *Callout) startWork() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// handle answers one authorization request. Requests it cannot read (not
// signed by a server, encrypted to another key) get no answer: the server
// times out and refuses the login.
func (c *Callout) handle(msg *nats.Msg) {
	data := msg.Data
	serverXKey := msg.Header.Get(xkeyHeader)
	if serverXKey != "" {
		if c.cfg.XKey == nil {
			c.log.Warn("encrypted auth request but no xkey configured")
			return
		}
		plain, err := c.cfg.XKey.Open(data, serverXKey)
		if err != nil {
			c.log.Warn("auth request not decryptable", keyErr, err)
			return
		}
		data = plain
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		c.log.Warn("auth request not readable", keyErr, err)
		return
	}
	vr := jwt.CreateValidationResults()
	req.Validate(vr)
	if vr.IsBlocking(true) {
		c.log.Warn("auth request invalid", keyErr, vr.Errors())
		return
	}
	if serverXKey != "" && req.Server.XKey != serverXKey {
		c.log.Warn("auth request xkey mismatch", keyServer, req.Server.ID)
		return
	}

	userJWT := c.authorize(req)
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	if userJWT == "" {
		resp.Error = refusal
	} else {
		resp.Jwt = userJWT
	}
	token, err := resp.Encode(c.cfg.Issuer)
	if err != nil {
		c.log.Error("encode auth response failed", keyErr, err)
		return
	}
	out := []byte(token)
	if serverXKey != "" {
		if out, err = c.cfg.XKey.Seal(out, serverXKey); err != nil {
			c.log.Error("encrypt auth response failed", keyErr, err)
			return
		}
	}
	if err := msg.Respond(out); err != nil {
		c.log.Warn("auth reply failed", keyErr, err)
	}
}

// authorize verifies the login of req and returns a signed user JWT, or ""
// when the login is refused.
func (c *Callout) authorize(req *jwt.AuthorizationRequestClaims) string {
	id, secret := req.ConnectOptions.Username, req.ConnectOptions.Password
	ctx, cancel := context.WithTimeout(c.ctx, c.o.verifyTimeout)
	defer cancel()
	// Rate limit per id and client host: failures from one host must not
	// lock a service out of reconnecting from its own.
	ctx = bus.ContextWithRemote(ctx, req.ClientInformation.Host)
	cred, err := c.v.VerifyService(ctx, id, secret)
	if err == nil && cred.ServiceID != id {
		err = errors.New("verifier returned another service")
	}
	if err != nil {
		logged := id
		if bus.ValidateServiceID(id) != nil {
			logged = "(invalid id)"
		}
		switch {
		case errors.Is(err, bus.ErrUnauthenticated), errors.Is(err, bus.ErrRateLimited):
			c.log.Debug("login refused", keyServiceID, logged) // the bus logs failures as counts per minute
		default:
			c.log.Warn("login check failed", keyServiceID, logged, keyErr, err)
		}
		return ""
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = id
	uc.Audience = c.cfg.Account
	uc.Permissions = permissions(id, cred.Permissions, c.cfg.EventsStream)
	ttl := c.cfg.TokenTTL - rand.N(c.cfg.TokenTTL/10+1)
	uc.Expires = c.o.now().Add(max(ttl, time.Second)).Unix()
	token, err := uc.Encode(c.cfg.Issuer)
	if err != nil {
		c.log.Error("encode user jwt failed", keyServiceID, id, keyErr, err)
		return ""
	}
	c.log.Debug("login accepted", keyServiceID, id)
	return token
}

// Close stops answering: the subscription drains, so requests already
// received are answered, and Close returns once they are and any removal
// watcher has stopped. Safe to call more than once.
func (c *Callout) Close() error {
	c.closeOnce.Do(func() {
		if !c.nc.IsClosed() {
			closed := c.sub.StatusChanged(nats.SubscriptionClosed)
			if err := c.sub.Drain(); err != nil {
				c.closeErr = fmt.Errorf("auth: drain: %w", err)
			} else {
				t := time.NewTimer(c.o.verifyTimeout + time.Second)
				select {
				case <-closed:
				case <-t.C:
					c.log.Warn("auth callout drain timed out")
				}
				t.Stop()
			}
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.log.Info("auth callout stopped")
	})
	return c.closeErr
}
