package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/natsapi"
)

// Limits of every service account and its users.
const (
	// DefaultMaxConnections bounds one service's connections.
	DefaultMaxConnections = 1000
	// DefaultMaxSubscriptions bounds one service user's subscriptions.
	DefaultMaxSubscriptions = 1000
	// DefaultMaxPayload bounds one message a service publishes: above the
	// bus's largest request (natsapi.DefaultMaxRequestBytes), well below the
	// server's limit.
	DefaultMaxPayload = 1 << 20
	// revokeTag marks, in an account JWT, users to revoke later: a
	// rotation's grace survives a restart of the bus.
	revokeTag = "revoke-before-at:"
)

// Limits of a service account's own JetStream, which holds only its copy
// of the change events and its listeners' consumers: these are the
// service's listener quota.
const (
	DefaultEventsStorage     = 256 << 20
	DefaultMaxListenerGroups = 64
)

// ServiceLookup reads a service's record; bus.Store is one.
type ServiceLookup interface {
	GetService(ctx context.Context, serviceID string) (bus.ServiceRecord, error)
}

// Accounts gives every service an account of its own in operator mode
// ([bus.Accounts]) and tells the bus which service an account belongs to
// ([natsapi.Callers]). Account JWTs are pushed to the server's resolver
// through the system account; they are the only state of an account, so
// every bus process can update any of them. Safe for concurrent use.
type Accounts struct {
	keys     *OperatorKeys
	sys      *nats.Conn
	busJS    jetstream.JetStream
	dial     func(...nats.Option) (*nats.Conn, error)
	services ServiceLookup
	log      *slog.Logger

	mu     sync.Mutex
	owners map[string]string // account key -> service id, verified against the record
	timers map[string]pendingSweep
	closed bool // no timer starts after Close

	updateMu sync.Mutex // one account update at a time in this process: no lost update
}

// AccountsConfig is what [NewAccounts] needs.
type AccountsConfig struct {
	// Keys sign the accounts and their users.
	Keys *OperatorKeys
	// System is a connection of the system account
	// ([OperatorKeys.SystemUser]): account updates go through it.
	System *nats.Conn
	// Bus is JetStream in the BUS account, where the events stream is:
	// the consumers that feed the services' own event streams are made
	// there.
	Bus jetstream.JetStream
	// Dial connects to the server with the given options; Accounts logs
	// in to a new service account with it once, to create the account's
	// events stream.
	Dial func(...nats.Option) (*nats.Conn, error)
	// Services checks an account's owner against its record.
	Services ServiceLookup
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// NewAccounts returns Accounts for cfg.
func NewAccounts(cfg AccountsConfig) (*Accounts, error) {
	if cfg.Keys == nil || cfg.System == nil || cfg.Bus == nil || cfg.Dial == nil || cfg.Services == nil {
		return nil, fmt.Errorf("%w: accounts need keys, the system connection, the bus's JetStream, a dialer and a service lookup", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Accounts{keys: cfg.Keys, sys: cfg.System, busJS: cfg.Bus, dial: cfg.Dial, services: cfg.Services,
		log: log.With("component", "accounts"), owners: map[string]string{}, timers: map[string]pendingSweep{}}, nil
}

var (
	_ bus.Accounts    = (*Accounts)(nil)
	_ natsapi.Callers = (*Accounts)(nil)
)

// Provision creates cred's account, imports as its permissions, and one
// user, whose credentials file it returns.
func (a *Accounts) Provision(ctx context.Context, cred bus.ServiceCredential) (string, []byte, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return "", nil, fmt.Errorf("auth: create account: %w", err)
	}
	account := publicKey(kp) // the account's seed is dropped: users are signed by the signing key
	ac, err := a.serviceAccount(account, cred)
	if err != nil {
		return "", nil, err
	}
	if err := a.push(ctx, ac); err != nil {
		return "", nil, err
	}
	creds, err := a.newUser(account, cred)
	if err == nil && slices.Contains(cred.Permissions, PermEventsSubscribe) {
		err = a.feedEvents(ctx, account)
	}
	if err != nil {
		a.undo(ctx, bus.ServiceCredential{ServiceID: cred.ServiceID, Account: account})
		return "", nil, err
	}
	return account, creds, nil
}

// RefreshImports adds to a service account the imports its permissions
// grant today and it lacks, so that an account made by an older release
// gains what was added since (the cache notices of session.read); it
// removes none. Its users' own permissions are in their JWTs: a rotation
// reissues them. Revoked accounts stay as they are.
func (a *Accounts) RefreshImports(ctx context.Context, cred bus.ServiceCredential) error {
	fresh, err := a.serviceAccount(cred.Account, cred)
	if err != nil {
		return err
	}
	return a.update(ctx, cred.Account, func(ac *jwt.AccountClaims) bool {
		added := false
		for _, want := range fresh.Imports {
			if !slices.ContainsFunc(ac.Imports, func(have *jwt.Import) bool { return *have == *want }) {
				ac.Imports.Add(want)
				added = true
			}
		}
		return added
	})
}

// undo revokes an account whose setup failed, with a context of its own
// (ctx may be what ended), and logs what it could not undo.
func (a *Accounts) undo(ctx context.Context, cred bus.ServiceCredential) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.Revoke(ctx, cred); err != nil {
		a.log.Warn("revoking an account whose setup failed", "account", cred.Account, "err", err)
	}
}

// Undo revokes an account [Accounts.Provision] made when the caller
// could not use it (its registration failed); see bus.Accounts.
func (a *Accounts) Undo(ctx context.Context, cred bus.ServiceCredential) { a.undo(ctx, cred) }

// serviceAccount builds the claims of a service's account: its imports
// are its permissions.
func (a *Accounts) serviceAccount(account string, cred bus.ServiceCredential) (*jwt.AccountClaims, error) {
	if err := bus.ValidateServiceID(cred.ServiceID); err != nil {
		return nil, err
	}
	busAcc := a.keys.BusAccount()
	ac := jwt.NewAccountClaims(account)
	ac.Name = cred.ServiceID
	ac.SigningKeys.Add(publicKey(a.keys.Signing))
	ac.Limits.Conn = DefaultMaxConnections
	ac.Limits.Payload = DefaultMaxPayload
	request := func(name string, class bus.Class, method string) {
		ac.Imports.Add(&jwt.Import{Name: name, Type: jwt.Service, Account: busAcc,
			Subject:      jwt.Subject(bus.SubjectPrefix + "." + string(class) + "." + method + "." + account),
			LocalSubject: jwt.RenamingSubject(bus.SubjectPrefix + "." + string(class) + "." + method + "." + cred.ServiceID)})
	}
	for _, perm := range bus.AllPermissions { // table order, each once
		if !slices.Contains(cred.Permissions, perm) {
			continue
		}
		switch perm {
		case PermSessionRead:
			request(perm, bus.ClassRead, "*")
			ac.Imports.Add(&jwt.Import{Name: "cache notices", Type: jwt.Stream, Account: busAcc, Subject: cacheExport})
		case PermSessionWrite:
			request(perm, bus.ClassWrite, "*")
		case PermSessionAdmin:
			request(perm, ClassSessions, "*")
			ac.Imports.Add(&jwt.Import{Name: "discovery", Type: jwt.Service, Account: busAcc, Subject: discoveryExport})
		case PermServiceVerify:
			request(perm, bus.ClassService, string(bus.MethodVerify))
		case PermServiceAdmin:
			request(perm, bus.ClassAdmin, "*")
		case PermEventsSubscribe:
			// Core events, and the feed of the account's own events stream.
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: DefaultEventsStorage, Streams: 1, Consumer: DefaultMaxListenerGroups}
			ac.Imports.Add(
				&jwt.Import{Name: perm, Type: jwt.Stream, Account: busAcc, Subject: eventsExport},
				&jwt.Import{Name: "event delivery", Type: jwt.Stream, Account: busAcc, Subject: jwt.Subject(deliverSubject(account))},
				&jwt.Import{Name: "event flow control", Type: jwt.Service, Account: busAcc,
					Subject: jwt.Subject("$JS.FC." + DefaultEventsStream + "." + account + ".*")},
				&jwt.Import{Name: "event source reset", Type: jwt.Service, Account: busAcc,
					Subject:      jwt.Subject("$JS.API.CONSUMER.RESET." + DefaultEventsStream + "." + account),
					LocalSubject: jwt.RenamingSubject(busJSAPIPrefix + ".CONSUMER.RESET." + DefaultEventsStream + "." + account)},
			)
		}
	}
	return ac, nil
}

func deliverSubject(account string) string {
	return strings.Replace(deliverExport, "*", account, 1)
}

// feedEvents makes account's own events stream: the bus's consumer on
// its events stream, named after the account and delivering on the
// account's deliver subject, and the account's stream sourcing from it.
// The service's users may use that stream (consumers, pulls, acks) but not
// create, change or delete it, nor reach the bus's JetStream API.
func (a *Accounts) feedEvents(ctx context.Context, account string) error {
	_, err := a.busJS.CreateOrUpdatePushConsumer(ctx, DefaultEventsStream, jetstream.ConsumerConfig{
		Durable:        account,
		Description:    "feeds the events stream of service account " + account,
		DeliverSubject: deliverSubject(account),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckFlowControlPolicy,
		FlowControl:    true,
		IdleHeartbeat:  time.Second, // the only heartbeat the flow-control ack policy takes
		MaxAckPending:  1024,
	})
	if err != nil {
		return fmt.Errorf("auth: events consumer for %s: %w", account, err)
	}
	return a.inAccount(account, func(js jetstream.JetStream) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        DefaultEventsStream,
			Description: "the session-bus change events, sourced from the bus",
			Storage:     jetstream.FileStorage,
			MaxBytes:    DefaultEventsStorage,
			Discard:     jetstream.DiscardOld,
			Sources: []*jetstream.StreamSource{{
				Name:     DefaultEventsStream,
				External: &jetstream.ExternalStream{APIPrefix: busJSAPIPrefix},
				Consumer: &jetstream.StreamConsumerSource{Name: account, DeliverSubject: deliverSubject(account)},
			}},
		})
		if err != nil {
			return fmt.Errorf("auth: events stream of %s: %w", account, err)
		}
		return nil
	})
}

// inAccount runs f with JetStream in account, logged in as a short-lived
// user with every right there.
func (a *Accounts) inAccount(account string, f func(jetstream.JetStream) error) error {
	setup, err := a.adminUser(account)
	if err != nil {
		return err
	}
	nc, err := a.dial(setup)
	if err != nil {
		return fmt.Errorf("auth: log in to %s: %w", account, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return f(js)
}

// dropEvents deletes account's events stream, if it has one.
func (a *Accounts) dropEvents(ctx context.Context, account string) error {
	ac, err := a.lookup(ctx, account)
	if err != nil {
		return err
	}
	if ac.Limits.JetStreamLimits == (jwt.JetStreamLimits{}) || revoked(ac) {
		return nil // no JetStream, or already revoked
	}
	return a.inAccount(account, func(js jetstream.JetStream) error {
		if err := js.DeleteStream(ctx, DefaultEventsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("auth: delete the events stream of %s: %w", account, err)
		}
		return nil
	})
}

// adminUser returns a short-lived login to account with every right, for
// the bus to set the account up.
func (a *Accounts) adminUser(account string) (nats.Option, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("auth: create user: %w", err)
	}
	uc := jwt.NewUserClaims(publicKey(ukp))
	uc.Name = "session-bus setup"
	uc.IssuerAccount = account
	uc.Expires = time.Now().Add(time.Minute).Unix()
	token, err := uc.Encode(a.keys.Signing)
	if err != nil {
		return nil, fmt.Errorf("auth: user jwt: %w", err)
	}
	seed, _ := ukp.Seed()
	return nats.UserJWTAndSeed(token, string(seed)), nil
}

// newUser issues a user of account for cred and returns its credentials
// file. Its subject permissions are the ones [Permissions] gives in callout
// mode (exactly the account's imports, and the consumer API of the
// account's own events stream), with replies on any _INBOX.> (the
// account is the service's own) and the listing of its own consumers.
func (a *Accounts) newUser(account string, cred bus.ServiceCredential) ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("auth: create user: %w", err)
	}
	uc := jwt.NewUserClaims(publicKey(ukp))
	uc.Name = cred.ServiceID
	uc.IssuerAccount = account
	uc.Subs = DefaultMaxSubscriptions
	uc.Limits.Payload = DefaultMaxPayload
	uc.Permissions = Permissions(cred.ServiceID, cred.Permissions)
	uc.Sub.Allow.Remove(client.InboxPrefix(cred.ServiceID) + ".>")
	uc.Sub.Allow.Add("_INBOX.>")
	if slices.Contains(cred.Permissions, PermEventsSubscribe) {
		uc.Pub.Allow.Add("$JS.API.INFO", "$JS.API.CONSUMER.LIST."+DefaultEventsStream, "$JS.API.CONSUMER.NAMES."+DefaultEventsStream)
	}
	token, err := uc.Encode(a.keys.Signing)
	if err != nil {
		return nil, fmt.Errorf("auth: user jwt: %w", err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return nil, fmt.Errorf("auth: creds: %w", err)
	}
	return creds, nil
}

// Revoke takes every import from cred's account and revokes all its
// users; the server closes their connections.
func (a *Accounts) Revoke(ctx context.Context, cred bus.ServiceCredential) error {
	if cred.Account == "" {
		return nil
	}
	a.mu.Lock()
	delete(a.owners, cred.Account)
	a.mu.Unlock()
	// The account's copy of the events goes first: once revoked, nobody
	// can log in to delete it.
	if err := a.dropEvents(ctx, cred.Account); err != nil {
		return err
	}
	err := a.update(ctx, cred.Account, func(ac *jwt.AccountClaims) bool {
		ac.Imports = nil
		ac.Limits.Conn = 0
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{}
		ac.RevokeAt(jwt.All, time.Now())
		return true
	})
	if err != nil {
		return err
	}
	// The consumer that fed the account's events goes too.
	if err := a.busJS.DeleteConsumer(ctx, DefaultEventsStream, cred.Account); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("auth: delete events consumer of %s: %w", cred.Account, err)
	}
	return nil
}

// ServiceOf returns the service that owns account: the account JWT's name,
// checked against the service's record (a revoked account of a removed
// service whose id was registered again is not its owner).
func (a *Accounts) ServiceOf(account string) (string, bool) {
	if !nkeys.IsValidPublicAccountKey(account) {
		return "", false
	}
	a.mu.Lock()
	id, ok := a.owners[account]
	a.mu.Unlock()
	if ok {
		return id, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ac, err := a.lookup(ctx, account)
	if err != nil {
		return "", false
	}
	rec, err := a.services.GetService(ctx, ac.Name)
	if err != nil || rec.Credential.Account != account {
		return "", false
	}
	a.mu.Lock()
	a.owners[account] = ac.Name
	a.mu.Unlock()
	return ac.Name, true
}

// update applies change to account's current claims and pushes them,
// unless change reports it changed nothing. Updates of this process are
// serialised, so none is lost to another's stale copy; a revoked account
// (no connections allowed) is never changed again, so a late update
// cannot give a removed service its imports back.
func (a *Accounts) update(ctx context.Context, account string, change func(*jwt.AccountClaims) bool) error {
	a.updateMu.Lock()
	defer a.updateMu.Unlock()
	ac, err := a.lookup(ctx, account)
	if err != nil {
		return err
	}
	if revoked(ac) {
		return nil // for good
	}
	if !change(ac) {
		return nil
	}
	return a.push(ctx, ac)
}

// revoked reports whether Revoke ended ac: no connection is allowed.
func revoked(ac *jwt.AccountClaims) bool { return ac.Limits.Conn == 0 }

// lookup fetches account's current claims from the server's resolver.
func (a *Accounts) lookup(ctx context.Context, account string) (*jwt.AccountClaims, error) {
	msg, err := a.sys.RequestWithContext(ctx, fmt.Sprintf(claimsLookupSubject, account), nil)
	if err != nil {
		return nil, fmt.Errorf("auth: look up account %s: %w", account, err)
	}
	ac, err := jwt.DecodeAccountClaims(string(msg.Data))
	if err != nil {
		return nil, fmt.Errorf("auth: look up account %s: %w", account, err)
	}
	if ac.Issuer != publicKey(a.keys.Operator) {
		return nil, fmt.Errorf("auth: account %s is not signed by this operator", account)
	}
	return ac, nil
}

// push signs ac with the operator key and sends it to the resolver.
func (a *Accounts) push(ctx context.Context, ac *jwt.AccountClaims) error {
	token, err := ac.Encode(a.keys.Operator)
	if err != nil {
		return fmt.Errorf("auth: account jwt: %w", err)
	}
	return pushClaims(ctx, a.sys, ac.Subject, token)
}

// pushClaims sends an account JWT to the servers' resolver through the
// system account connection sys.
func pushClaims(ctx context.Context, sys *nats.Conn, account, token string) error {
	msg, err := sys.RequestWithContext(ctx, claimsUpdateSubject, []byte(token))
	if err != nil {
		return fmt.Errorf("auth: push account %s: %w", account, err)
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("auth: push account %s: %w", account, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("auth: push account %s: %s", account, resp.Error.Description)
	}
	return nil
}

// authErrorSubject is where every server of the cluster reports a refused
// login to the system account.
const authErrorSubject = "$SYS.SERVER.*.CLIENT.AUTH.ERR"

// WatchFailedLogins calls report with the host of every login a server
// refuses (in operator mode the server checks logins itself, so this is
// how the bus learns of them). sys is a system account connection; the
// subscription ends when it closes.
func WatchFailedLogins(sys *nats.Conn, report func(host string)) error {
	_, err := sys.Subscribe(authErrorSubject, func(m *nats.Msg) {
		var ev struct {
			Client struct {
				Host string `json:"host"`
			} `json:"client"`
		}
		if json.Unmarshal(m.Data, &ev) == nil {
			report(ev.Client.Host)
		}
	})
	if err != nil {
		return fmt.Errorf("auth: watch failed logins: %w", err)
	}
	return sys.Flush()
}
