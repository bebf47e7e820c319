package auth

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// DefaultAuthTimeout is the server's auth timeout [ServerOptions] and
// [ServerConfig] set: how long a login may take, callout included.
const DefaultAuthTimeout = 5 * time.Second

// ServerOptions returns a copy of base set up for callout mode: the system
// account [SystemAccount] with [SysUser], [BusUser] in the global account,
// both exempt from the callout, and every other login handed to the
// callout signed by k.Issuer, encrypted to k.XKey. The passwords are
// held in clear in the returned options (they stay in process memory). Anonymous logins go to
// the callout too, which refuses them. The auth timeout is raised to
// [DefaultAuthTimeout] when lower. base must not configure authentication
// or accounts itself. Errors: [ErrInvalidConfig].
func ServerOptions(base *server.Options, k *Keys) (*server.Options, error) {
	if base == nil || k == nil {
		return nil, fmt.Errorf("%w: nil options or keys", ErrInvalidConfig)
	}
	if err := checkNoAuth(base); err != nil {
		return nil, err
	}
	a, err := newAuthSetup(k, false)
	if err != nil {
		return nil, err
	}
	o := base.Clone()
	sys := server.NewAccount(SystemAccount)
	o.Accounts = []*server.Account{sys}
	o.SystemAccount = SystemAccount
	o.Users = []*server.User{
		{Username: BusUser, Password: a.busHash},
		{Username: SysUser, Password: a.sysHash, Account: sys},
	}
	o.AuthCallout = &server.AuthCallout{
		Issuer:    a.issuer,
		AuthUsers: []string{BusUser, SysUser},
		XKey:      a.xkey,
	}
	if o.AuthTimeout < DefaultAuthTimeout.Seconds() {
		o.AuthTimeout = DefaultAuthTimeout.Seconds()
	}
	// A login waits for the callout; in a burst the wait passes the
	// server's short first PING (about 2 s), which nats.go takes as a
	// broken handshake ("expected 'PONG', got 'PING'"). The auth timeout
	// bounds the wait instead.
	o.DisableShortFirstPing = true
	return o, nil
}

// ServerConfig returns the nats-server configuration text of callout mode
// for an external server: the same setup as [ServerOptions], with bcrypt
// password hashes. Add it to a config that sets listen and jetstream, and
// define no other accounts or users. It holds no secret in clear, but lets
// the holder recognise the passwords, so keep it mode 0600.
func ServerConfig(k *Keys) (string, error) {
	if k == nil {
		return "", fmt.Errorf("%w: nil keys", ErrInvalidConfig)
	}
	a, err := newAuthSetup(k, true)
	if err != nil {
		return "", err
	}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# session-bus: services log in through the bus's auth callout.\n")
	fmt.Fprintf(&b, "accounts {\n  %s {\n    users: [ { user: %s, password: %s } ]\n  }\n}\n", SystemAccount, q(SysUser), q(a.sysHash))
	fmt.Fprintf(&b, "system_account: %s\n", SystemAccount)
	fmt.Fprintf(&b, "authorization {\n  timeout: %g\n", DefaultAuthTimeout.Seconds())
	fmt.Fprintf(&b, "  users: [ { user: %s, password: %s } ]\n", q(BusUser), q(a.busHash))
	fmt.Fprintf(&b, "  auth_callout {\n    issuer: %s\n    auth_users: [ %s, %s ]\n    xkey: %s\n  }\n}\n",
		q(a.issuer), q(BusUser), q(SysUser), q(a.xkey))
	return b.String(), nil
}

// authSetup is what a server needs to know of Keys: public keys and
// passwords, bcrypt-hashed for a config file.
type authSetup struct {
	issuer, xkey     string
	busHash, sysHash string
}

func newAuthSetup(k *Keys, hash bool) (authSetup, error) {
	if k.Issuer == nil || k.XKey == nil || k.BusPassword == "" || k.SysPassword == "" {
		return authSetup{}, fmt.Errorf("%w: incomplete keys", ErrInvalidConfig)
	}
	var a authSetup
	var err error
	if a.issuer, err = k.Issuer.PublicKey(); err != nil {
		return authSetup{}, fmt.Errorf("%w: issuer key: %w", ErrInvalidConfig, err)
	}
	if a.xkey, err = k.XKey.PublicKey(); err != nil {
		return authSetup{}, fmt.Errorf("%w: xkey: %w", ErrInvalidConfig, err)
	}
	if !hash { // in-process options: never written anywhere
		a.busHash, a.sysHash = k.BusPassword, k.SysPassword
		return a, nil
	}
	if a.busHash, err = bcryptHash(k.BusPassword); err != nil {
		return authSetup{}, err
	}
	if a.sysHash, err = bcryptHash(k.SysPassword); err != nil {
		return authSetup{}, err
	}
	return a, nil
}

func bcryptHash(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("%w: hash password: %w", ErrInvalidConfig, err)
	}
	return string(h), nil
}

// checkNoAuth refuses base options that configure authentication or
// accounts themselves: the bus's setup replaces them.
func checkNoAuth(base *server.Options) error {
	switch {
	case len(base.Users) > 0, len(base.Nkeys) > 0, len(base.Accounts) > 0,
		base.Username != "", base.Authorization != "", base.AuthCallout != nil,
		base.NoAuthUser != "", len(base.TrustedOperators) > 0, len(base.TrustedKeys) > 0:
		return fmt.Errorf("%w: base options already configure authentication", ErrInvalidConfig)
	}
	return nil
}
