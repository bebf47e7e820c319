package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/session-bus/session-bus/bus"
)

// Limits of every service account and its users.
const (
	// DefaultMaxConnections bounds one service's connections.
	DefaultMaxConnections = 1000
	// DefaultMaxSubscriptions bounds one service user's subscriptions.
	DefaultMaxSubscriptions = 1000
	// DefaultMaxPayload bounds one message a service publishes: above the
	// bus's largest request (bus.DefaultMaxRequestBytes), well below the
	// server's limit.
	DefaultMaxPayload = 1 << 20
	// revokeTag marks, in an account JWT, users to revoke later: a
	// rotation's grace survives a restart of the bus.
	revokeTag = "revoke-before-at:"
)

// ServiceLookup reads a service's record; bus.Store is one.
type ServiceLookup interface {
	GetService(ctx context.Context, serviceID string) (bus.ServiceRecord, error)
}

// Accounts gives every service an account of its own in operator mode
// ([bus.Accounts]) and tells the bus which service an account belongs to
// ([bus.Callers]). Account JWTs are pushed to the server's resolver
// through the system account; they are the only state of an account, so
// every bus process can update any of them. Safe for concurrent use.
type Accounts struct {
	keys     *OperatorKeys
	sys      *nats.Conn
	services ServiceLookup
	log      *slog.Logger

	mu     sync.Mutex
	owners map[string]string // account key -> service id, verified against the record
	timers map[string]*time.Timer
}

// NewAccounts returns Accounts signing with keys, pushing through sys (a
// connection of the system account, see [OperatorKeys.SystemUser]) and
// checking owners against services.
func NewAccounts(keys *OperatorKeys, sys *nats.Conn, services ServiceLookup, log *slog.Logger) (*Accounts, error) {
	if keys == nil || sys == nil || services == nil {
		return nil, fmt.Errorf("%w: accounts need keys, a system connection and a service lookup", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Accounts{keys: keys, sys: sys, services: services, log: log.With("component", "accounts"),
		owners: map[string]string{}, timers: map[string]*time.Timer{}}, nil
}

var (
	_ bus.Accounts = (*Accounts)(nil)
	_ bus.Callers  = (*Accounts)(nil)
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
	if err != nil {
		return "", nil, err
	}
	return account, creds, nil
}

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
			ac.Imports.Add(&jwt.Import{Name: perm, Type: jwt.Stream, Account: busAcc, Subject: eventsExport})
		}
	}
	return ac, nil
}

// newUser issues a user of account for cred and returns its credentials
// file. Its permissions allow exactly the account's imports, replies on
// _INBOX.>, and the events with events.subscribe.
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
	uc.Sub.Allow.Add("_INBOX.>")
	for _, perm := range bus.AllPermissions {
		if !slices.Contains(cred.Permissions, perm) {
			continue
		}
		switch perm {
		case PermSessionRead:
			uc.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassRead) + ".*." + cred.ServiceID)
		case PermSessionWrite:
			uc.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassWrite) + ".*." + cred.ServiceID)
		case PermSessionAdmin:
			uc.Pub.Allow.Add(bus.SubjectPrefix+"."+string(ClassSessions)+".*."+cred.ServiceID, discoveryExport)
		case PermServiceVerify:
			uc.Pub.Allow.Add(bus.Subject(bus.ClassService, bus.MethodVerify, cred.ServiceID))
		case PermServiceAdmin:
			uc.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassAdmin) + ".*." + cred.ServiceID)
		case PermEventsSubscribe:
			uc.Sub.Allow.Add(eventsExport)
		}
	}
	if len(uc.Pub.Allow) == 0 { // an empty allow list means "anything"
		uc.Pub.Deny.Add(">")
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

// Reissue issues a new user of cred's account. The users issued before
// it are revoked after grace: at once for 0, else by a timer, recorded in
// the account JWT so that a restarted bus still revokes them
// ([Accounts.Resume]).
func (a *Accounts) Reissue(ctx context.Context, cred bus.ServiceCredential, grace time.Duration) ([]byte, error) {
	if cred.Account == "" {
		return nil, fmt.Errorf("%w: service %s has no account", ErrInvalidConfig, cred.ServiceID)
	}
	// Revocation compares whole seconds of issue time: the new user must
	// be issued in a later second than every user it replaces.
	before := time.Now().Truncate(time.Second)
	if err := sleepCtx(ctx, time.Until(before.Add(time.Second))); err != nil {
		return nil, err
	}
	creds, err := a.newUser(cred.Account, cred)
	if err != nil {
		return nil, err
	}
	at := time.Now().Add(grace)
	err = a.update(ctx, cred.Account, func(ac *jwt.AccountClaims) {
		if grace <= 0 {
			ac.RevokeAt(jwt.All, before)
			return
		}
		ac.Tags.Add(revokeTag + strconv.FormatInt(before.Unix(), 10) + ":" + strconv.FormatInt(at.Unix(), 10))
	})
	if err != nil {
		return nil, err
	}
	if grace > 0 {
		a.schedule(cred.Account, before, at)
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
	return a.update(ctx, cred.Account, func(ac *jwt.AccountClaims) {
		ac.Imports = nil
		ac.Limits.Conn = 0
		ac.RevokeAt(jwt.All, time.Now())
	})
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

// Resume re-arms the revocations of rotations whose grace has not ended
// (or ended while no bus ran) for the given accounts.
func (a *Accounts) Resume(ctx context.Context, accounts []string) error {
	for _, account := range accounts {
		ac, err := a.lookup(ctx, account)
		if err != nil {
			return err
		}
		for _, tag := range ac.Tags {
			before, at, ok := parseRevokeTag(tag)
			if ok {
				a.schedule(account, before, at)
			}
		}
	}
	return nil
}

func parseRevokeTag(tag string) (before, at time.Time, ok bool) {
	rest, ok := strings.CutPrefix(tag, revokeTag)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	b, t, ok := strings.Cut(rest, ":")
	bs, err1 := strconv.ParseInt(b, 10, 64)
	ts, err2 := strconv.ParseInt(t, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(bs, 0), time.Unix(ts, 0), true
}

// schedule revokes account's users issued up to before, at at.
func (a *Accounts) schedule(account string, before, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.timers[account]; t != nil {
		t.Stop()
	}
	a.timers[account] = time.AfterFunc(time.Until(at), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := a.update(ctx, account, func(ac *jwt.AccountClaims) {
			ac.RevokeAt(jwt.All, before)
			ac.Tags = slices.DeleteFunc(ac.Tags, func(t string) bool { return strings.HasPrefix(t, revokeTag) })
		})
		if err != nil {
			a.log.Error("revoking rotated credentials failed; rotate again with grace 0", "account", account, "err", err)
		}
	})
}

// Close stops the pending revocation timers (they resume with Resume).
func (a *Accounts) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.timers {
		t.Stop()
	}
	a.timers = map[string]*time.Timer{}
}

// update applies change to account's current claims and pushes them.
func (a *Accounts) update(ctx context.Context, account string, change func(*jwt.AccountClaims)) error {
	ac, err := a.lookup(ctx, account)
	if err != nil {
		return err
	}
	change(ac)
	return a.push(ctx, ac)
}

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
	msg, err := a.sys.RequestWithContext(ctx, claimsUpdateSubject, []byte(token))
	if err != nil {
		return fmt.Errorf("auth: push account %s: %w", ac.Subject, err)
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("auth: push account %s: %w", ac.Subject, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("auth: push account %s: %s", ac.Subject, resp.Error.Description)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errors.Join(ctx.Err(), errors.New("auth: waiting for the next second"))
	}
}
