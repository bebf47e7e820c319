package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/session-bus/session-bus/bus"
)

// Operator mode ("accounts"): the NATS server trusts an operator whose key
// the bus holds. The bus's buckets and streams live in the BUS account,
// which only the bus's own in-process users log in to; every service gets
// an account of its own ([Accounts]) whose imports of the BUS account's
// exports are its permissions. A reply the bus sends travels back through
// the import to the requesting account only, so no service can aim it at
// the bus's subjects or at another service's.

// Subjects of the operator-mode layout.
const (
	// requestExport is the BUS account's service export of every request
	// subject; its 4th token must be the importing account's public key
	// (exportTokenPosition), which the server checks.
	requestExport       = bus.SubjectPrefix + ".*.*.*"
	exportTokenPosition = 4
	// discoveryExport lets the admin's account reach the micro
	// discovery subjects ($SRV.PING, $SRV.INFO, $SRV.STATS).
	discoveryExport = "$SRV.>"
	// eventsExport is the stream export of the change events (core
	// subscribers).
	eventsExport = "session.>"
	// cacheExport is the stream export of the change notices that keep
	// the services' session caches coherent (session.read).
	cacheExport = bus.CacheSubject
	// The exports a service account's own events stream sources through
	// (auth/sourcing_probe_test.go shows why each is needed): the bus
	// pre-creates one push consumer per service account, named after its
	// key, delivering on deliverExport; the sourcing stream resets it on
	// start and answers its flow control. Each export pins a token to the
	// importing account, so a service reaches only its own consumer.
	deliverExport       = bus.SubjectPrefix + ".deliver.*"
	deliverTokenPos     = 3
	busJSAPIPrefix      = "$JS.bus.API" // where a service account sees the bus's reset API
	flowControlTokenPos = 4
	resetTokenPos       = 6

	claimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"
	claimsLookupSubject = "$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP"
)

// operatorFileName holds the operator-mode seeds under <dataDir>/auth.
const operatorFileName = "operator.json"

// OperatorKeys are the keys of operator mode. They never appear in logs
// or in %v output.
type OperatorKeys struct {
	// Operator signs every account JWT.
	Operator nkeys.KeyPair
	// System is the system account; the bus pushes account updates and
	// closes connections through a user of it.
	System nkeys.KeyPair
	// Bus is the account of the bus's buckets and streams.
	Bus nkeys.KeyPair
	// Signing signs the users of every service account (each lists it as
	// a signing key), so no service account's own seed is kept.
	Signing nkeys.KeyPair
	// Dir is <dataDir>/auth; the account resolver keeps its JWTs under it.
	Dir string
}

// String keeps the seeds out of %v.
func (k *OperatorKeys) String() string { return "auth.OperatorKeys{[REDACTED]}" }

// GoString keeps the seeds out of %#v.
func (k *OperatorKeys) GoString() string { return k.String() }

type operatorFile struct {
	OperatorSeed string `json:"operator_seed"`
	SystemSeed   string `json:"system_account_seed"`
	BusSeed      string `json:"bus_account_seed"`
	SigningSeed  string `json:"service_signing_seed"`
}

// BootstrapOperator loads the operator-mode keys kept in
// dataDir/auth/operator.json (mode 0600), creating them on first start.
// To join an operator you already run, write the file before the first
// start: operator_seed a signing key of your operator (account JWTs signed
// with it are trusted), system_account_seed the seed of its system account
// (the bus pushes accounts and closes connections through a user of it),
// bus_account_seed and service_signing_seed new account keys (nsc or
// nkeys). Errors: [ErrKeyFile], or the file system's.
func BootstrapOperator(dataDir string) (*OperatorKeys, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("%w: empty data dir", ErrInvalidConfig)
	}
	dir := filepath.Join(dataDir, authDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, operatorFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f, err := newOperatorFile()
		if err != nil {
			return nil, err
		}
		if err := writeJSONExcl(path, f); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	var f operatorFile
	if err := readJSON(path, &f); err != nil {
		return nil, err
	}
	k := &OperatorKeys{Dir: dir}
	for _, s := range []struct {
		seed  string
		into  *nkeys.KeyPair
		valid func(string) bool
		what  string
	}{
		{f.OperatorSeed, &k.Operator, nkeys.IsValidPublicOperatorKey, "operator_seed"},
		{f.SystemSeed, &k.System, nkeys.IsValidPublicAccountKey, "system_account_seed"},
		{f.BusSeed, &k.Bus, nkeys.IsValidPublicAccountKey, "bus_account_seed"},
		{f.SigningSeed, &k.Signing, nkeys.IsValidPublicAccountKey, "service_signing_seed"},
	} {
		kp, err := nkeys.FromSeed([]byte(s.seed))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s", ErrKeyFile, path, s.what)
		}
		if pub, _ := kp.PublicKey(); !s.valid(pub) {
			return nil, fmt.Errorf("%w: %s: %s is the wrong kind of key", ErrKeyFile, path, s.what)
		}
		*s.into = kp
	}
	return k, nil
}

func newOperatorFile() (operatorFile, error) {
	seed := func(create func() (nkeys.KeyPair, error)) (string, error) {
		kp, err := create()
		if err != nil {
			return "", fmt.Errorf("auth: create key: %w", err)
		}
		s, err := kp.Seed()
		return string(s), err
	}
	var f operatorFile
	var err error
	if f.OperatorSeed, err = seed(nkeys.CreateOperator); err != nil {
		return f, err
	}
	if f.SystemSeed, err = seed(nkeys.CreateAccount); err != nil {
		return f, err
	}
	if f.BusSeed, err = seed(nkeys.CreateAccount); err != nil {
		return f, err
	}
	f.SigningSeed, err = seed(nkeys.CreateAccount)
	return f, err
}

func publicKey(kp nkeys.KeyPair) string {
	pub, _ := kp.PublicKey() // a key pair made from a valid seed has one
	return pub
}

// BusAccount is the public key of the BUS account: its JetStream data
// lives under <store dir>/jetstream/<BusAccount>.
func (k *OperatorKeys) BusAccount() string { return publicKey(k.Bus) }

func (k *OperatorKeys) operatorClaims() (*jwt.OperatorClaims, error) {
	oc := jwt.NewOperatorClaims(publicKey(k.Operator))
	oc.Name = "session-bus"
	oc.SystemAccount = publicKey(k.System)
	token, err := oc.Encode(k.Operator)
	if err != nil {
		return nil, fmt.Errorf("auth: operator jwt: %w", err)
	}
	return jwt.DecodeOperatorClaims(token)
}

// accountJWTs returns the system and BUS account JWTs.
func (k *OperatorKeys) accountJWTs() (sys, busAcc string, err error) {
	sc := jwt.NewAccountClaims(publicKey(k.System))
	sc.Name = "SYS"
	if sys, err = sc.Encode(k.Operator); err != nil {
		return "", "", fmt.Errorf("auth: system account jwt: %w", err)
	}
	bc := jwt.NewAccountClaims(publicKey(k.Bus))
	bc.Name = "BUS"
	bc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	bc.Exports.Add(
		&jwt.Export{Name: "session-bus requests", Subject: requestExport, Type: jwt.Service, AccountTokenPosition: exportTokenPosition},
		&jwt.Export{Name: "session-bus discovery", Subject: discoveryExport, Type: jwt.Service},
		&jwt.Export{Name: "session-bus events", Subject: eventsExport, Type: jwt.Stream},
		&jwt.Export{Name: "session-bus cache notices", Subject: cacheExport, Type: jwt.Stream},
		&jwt.Export{Name: "session-bus event delivery", Subject: deliverExport, Type: jwt.Stream, AccountTokenPosition: deliverTokenPos},
		&jwt.Export{Name: "session-bus event flow control", Subject: jwt.Subject("$JS.FC." + DefaultEventsStream + ".*.*"),
			Type: jwt.Service, AccountTokenPosition: flowControlTokenPos},
		&jwt.Export{Name: "session-bus event source reset", Subject: jwt.Subject("$JS.API.CONSUMER.RESET." + DefaultEventsStream + ".*"),
			Type: jwt.Service, AccountTokenPosition: resetTokenPos},
	)
	if busAcc, err = bc.Encode(k.Operator); err != nil {
		return "", "", fmt.Errorf("auth: bus account jwt: %w", err)
	}
	return sys, busAcc, nil
}

// OperatorServerOptions returns a copy of base in operator mode: the
// operator of k trusted, the system account set, and a directory account
// resolver under k.Dir/accounts that keeps every account JWT the bus
// pushes across restarts, preloaded with the system and BUS accounts.
// Users log in with user JWTs (.creds files); there are no passwords.
// base must not configure authentication or accounts itself.
func OperatorServerOptions(base *server.Options, k *OperatorKeys) (*server.Options, error) {
	if base == nil || k == nil {
		return nil, fmt.Errorf("%w: nil options or keys", ErrInvalidConfig)
	}
	if err := checkNoAuth(base); err != nil {
		return nil, err
	}
	oc, err := k.operatorClaims()
	if err != nil {
		return nil, err
	}
	sysJWT, busJWT, err := k.accountJWTs()
	if err != nil {
		return nil, err
	}
	// The dir resolver persists pushed accounts; deletes are refused (a
	// removed service's account is revoked instead, which a restart keeps).
	res, err := server.NewDirAccResolver(filepath.Join(k.Dir, "accounts"), 0, 2*time.Minute, server.NoDelete)
	if err != nil {
		return nil, fmt.Errorf("auth: account resolver: %w", err)
	}
	if err := res.Store(publicKey(k.System), sysJWT); err != nil {
		return nil, fmt.Errorf("auth: store system account: %w", err)
	}
	if err := res.Store(publicKey(k.Bus), busJWT); err != nil {
		return nil, fmt.Errorf("auth: store bus account: %w", err)
	}
	o := base.Clone()
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.SystemAccount = publicKey(k.System)
	o.AccountResolver = res
	if o.AuthTimeout < DefaultAuthTimeout.Seconds() {
		o.AuthTimeout = DefaultAuthTimeout.Seconds()
	}
	// In a burst of logins on a loaded machine the server's short first
	// PING (about 2 s) can come before the handshake is done, which
	// nats.go takes as a broken handshake ("expected 'PONG', got 'PING'":
	// 497 of 500 logins beside four busy loops). The auth timeout bounds
	// the handshake instead.
	o.DisableShortFirstPing = true
	return o, nil
}

// BusUser returns the nats.Option of a new user of the BUS account: the
// bus's own connections. The user lives only in this process's memory.
func (k *OperatorKeys) BusUser() (nats.Option, error) { return inProcessUser(k.Bus, "session-bus") }

// SystemUser returns the nats.Option of a new user of the system account.
func (k *OperatorKeys) SystemUser() (nats.Option, error) {
	return inProcessUser(k.System, "session-bus-sys")
}

func inProcessUser(account nkeys.KeyPair, name string) (nats.Option, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("auth: create user: %w", err)
	}
	uc := jwt.NewUserClaims(publicKey(ukp))
	uc.Name = name
	token, err := uc.Encode(account)
	if err != nil {
		return nil, fmt.Errorf("auth: user jwt: %w", err)
	}
	seed, _ := ukp.Seed()
	return nats.UserJWTAndSeed(token, string(seed)), nil
}

// OperatorServerConfig returns the nats-server configuration text of
// operator mode for an external server: the operator JWT, the system
// account, and a full (directory) resolver under resolverDir preloaded
// with the system and BUS accounts; the bus pushes every service account
// to it through the system account, and the resolver spreads them to the
// cluster. Add it to a config that sets listen and jetstream, and define
// no other accounts or users. It holds no secret (JWTs are signed, not
// secret); the seeds stay in <dataDir>/auth/operator.json, which every bus
// process needs.
func OperatorServerConfig(k *OperatorKeys, resolverDir string) (string, error) {
	if k == nil || resolverDir == "" {
		return "", fmt.Errorf("%w: nil keys or empty resolver dir", ErrInvalidConfig)
	}
	oc := jwt.NewOperatorClaims(publicKey(k.Operator))
	oc.Name = "session-bus"
	oc.SystemAccount = publicKey(k.System)
	opJWT, err := oc.Encode(k.Operator)
	if err != nil {
		return "", fmt.Errorf("auth: operator jwt: %w", err)
	}
	sysJWT, busJWT, err := k.accountJWTs()
	if err != nil {
		return "", err
	}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# session-bus: operator mode; every service has an account of its own.\n")
	fmt.Fprintf(&b, "operator: %s\n", q(opJWT))
	fmt.Fprintf(&b, "system_account: %s\n", publicKey(k.System))
	fmt.Fprintf(&b, "resolver {\n  type: full\n  dir: %s\n  allow_delete: false\n  interval: \"2m\"\n}\n", q(resolverDir))
	fmt.Fprintf(&b, "resolver_preload {\n  %s: %s\n  %s: %s\n}\n", publicKey(k.System), q(sysJWT), publicKey(k.Bus), q(busJWT))
	return b.String(), nil
}

// PushBusAccount sends the BUS account's JWT to the servers' resolver
// through sys, a system account connection: how the bus joins a NATS
// deployment whose operator it does not run (see [BootstrapOperator]),
// where nothing preloads its account.
func PushBusAccount(ctx context.Context, sys *nats.Conn, k *OperatorKeys) error {
	_, busJWT, err := k.accountJWTs()
	if err != nil {
		return err
	}
	return pushClaims(ctx, sys, k.BusAccount(), busJWT)
}
