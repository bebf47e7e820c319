package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// The bus's own NATS users. The server exempts them from the callout
// (auth_users). Their names start with '_', which no service id can, so no
// service can log in as one of them.
const (
	// BusUser runs the bus: sessions, the micro service, the callout. It
	// lives in the callout's account with full permissions.
	BusUser = "_session-bus"
	// SysUser lives in the system account; the Callout uses it to find
	// and close the connections of removed services.
	SysUser = "_session-bus-sys"
	// SystemAccount is the system account [ServerOptions] and
	// [ServerConfig] create.
	SystemAccount = "SYS"
)

// AdminServiceID is the service [Bootstrap] creates credentials for and
// [EnsureAdmin] registers, with every permission in [AllPermissions].
const AdminServiceID = "admin"

// File names under <dataDir>/auth, each mode 0600 in a 0700 directory.
const (
	authDirName   = "auth"
	keysFileName  = "keys.json"
	adminFileName = "admin.json"
)

// Keys are the secrets of the bus's auth setup. They never appear in logs
// or in %v output.
type Keys struct {
	// Issuer is the account key pair that signs user JWTs; its public key
	// is the server's auth_callout issuer.
	Issuer nkeys.KeyPair
	// XKey is the curve key pair the callout traffic is encrypted to.
	XKey nkeys.KeyPair
	// BusPassword is the password of [BusUser].
	BusPassword string
	// SysPassword is the password of [SysUser].
	SysPassword string
	// Admin is the login of [AdminServiceID]; AdminPath the file holding
	// it, which client.LoadServiceCreds reads.
	Admin     client.ServiceCreds
	AdminPath string
	// Created reports that Bootstrap made the keys now: the caller should
	// tell the operator, once, where the admin credentials are.
	Created bool
}

// LogValue keeps the secrets out of logs.
func (k *Keys) LogValue() slog.Value {
	return slog.GroupValue(slog.String("admin_path", k.AdminPath), slog.Bool("created", k.Created))
}

// String keeps the secrets out of %v.
func (k *Keys) String() string { return "auth.Keys{[REDACTED]}" }

// GoString keeps the secrets out of %#v.
func (k *Keys) GoString() string { return k.String() }

// Config returns DefaultConfig with the issuer and xkey of k.
func (k *Keys) Config() Config {
	c := DefaultConfig()
	c.Issuer, c.XKey = k.Issuer, k.XKey
	return c
}

// BusConnectOptions returns the nats.Options the bus connects with, as
// [BusUser].
func (k *Keys) BusConnectOptions() []nats.Option {
	return []nats.Option{nats.UserInfo(BusUser, k.BusPassword)}
}

// SysConnectOptions returns the nats.Options of the system account
// connection, as [SysUser], that [WithSystemConn] takes.
func (k *Keys) SysConnectOptions() []nats.Option {
	return []nats.Option{nats.UserInfo(SysUser, k.SysPassword)}
}

// keysFile is the JSON of <dataDir>/auth/keys.json.
type keysFile struct {
	IssuerSeed  string `json:"issuer_seed"`
	XKeySeed    string `json:"xkey_seed"`
	BusPassword string `json:"bus_password"`
	SysPassword string `json:"sys_password"`
}

// Bootstrap loads the auth keys kept in dataDir/auth, creating them on
// first start: the issuer and xkey seeds and the bus's passwords in
// keys.json, and the admin service's login in admin.json, each mode 0600.
// Keys.Created tells the caller to print Keys.AdminPath once; Bootstrap
// itself logs nothing. A key file that others may read is refused.
// Errors: [ErrKeyFile], or the file system's.
func Bootstrap(dataDir string) (*Keys, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("%w: empty data dir", ErrInvalidConfig)
	}
	dir := filepath.Join(dataDir, authDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create %s: %w", dir, err)
	}
	keysPath, adminPath := filepath.Join(dir, keysFileName), filepath.Join(dir, adminFileName)
	created := false
	if _, err := os.Stat(keysPath); errors.Is(err, fs.ErrNotExist) {
		kf, err := newKeysFile()
		if err != nil {
			return nil, err
		}
		if err := writeJSONExcl(keysPath, kf); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		created = true
	}
	if _, err := os.Stat(adminPath); errors.Is(err, fs.ErrNotExist) {
		admin := client.ServiceCreds{ServiceID: AdminServiceID, Secret: bus.GenerateSecret()}
		if err := writeJSONExcl(adminPath, admin); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		created = true
	}
	var kf keysFile
	if err := readJSON(keysPath, &kf); err != nil {
		return nil, err
	}
	k := &Keys{BusPassword: kf.BusPassword, SysPassword: kf.SysPassword, AdminPath: adminPath, Created: created}
	var err error
	if k.Issuer, err = nkeys.FromSeed([]byte(kf.IssuerSeed)); err != nil {
		return nil, fmt.Errorf("%w: %s: issuer seed", ErrKeyFile, keysPath)
	}
	if pub, _ := k.Issuer.PublicKey(); !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("%w: %s: issuer seed is not an account seed", ErrKeyFile, keysPath)
	}
	if k.XKey, err = nkeys.FromCurveSeed([]byte(kf.XKeySeed)); err != nil {
		return nil, fmt.Errorf("%w: %s: xkey seed", ErrKeyFile, keysPath)
	}
	if len(k.BusPassword) < bus.MinSecretBytes || len(k.SysPassword) < bus.MinSecretBytes {
		return nil, fmt.Errorf("%w: %s: passwords missing or short", ErrKeyFile, keysPath)
	}
	if k.Admin, err = client.LoadServiceCreds(adminPath); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	return k, nil
}

func newKeysFile() (keysFile, error) {
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return keysFile{}, fmt.Errorf("auth: create issuer key: %w", err)
	}
	xkey, err := nkeys.CreateCurveKeys()
	if err != nil {
		return keysFile{}, fmt.Errorf("auth: create xkey: %w", err)
	}
	is, _ := issuer.Seed()
	xs, _ := xkey.Seed()
	return keysFile{
		IssuerSeed:  string(is),
		XKeySeed:    string(xs),
		BusPassword: bus.GenerateSecret(),
		SysPassword: bus.GenerateSecret(),
	}, nil
}

// writeJSONExcl writes v to path, mode 0600, failing with fs.ErrExist when
// path exists: it writes a temp file and links it into place, so a reader
// never sees half a file and two starting processes keep the first's keys.
func writeJSONExcl(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: encode %s: %w", path, err)
	}
	return writeFile(path, append(data, '\n'), os.Link)
}

// writeFileAtomic replaces path with data, mode 0600, through a temp file
// renamed into place.
func writeFileAtomic(path string, data []byte) error { return writeFile(path, data, os.Rename) }

// writeFile writes data to a synced temp file of mode 0600 beside path and
// puts it in place with place (os.Link: only if path is new; os.Rename:
// replacing it).
func writeFile(path string, data []byte, place func(oldname, newname string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := place(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	return nil
}

// readJSON reads path into v, refusing a file that group or others may
// access.
func readJSON(path string, v any) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s is mode %v; want 0600", ErrKeyFile, path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: not valid JSON", ErrKeyFile, path)
	}
	return nil
}

// Registrar registers, verifies and removes services; *bus.Manager is one.
type Registrar interface {
	RegisterService(ctx context.Context, cred bus.ServiceCredential, secret string) (string, error)
	VerifyService(ctx context.Context, serviceID, secret string) (bus.ServiceCredential, error)
	RemoveService(ctx context.Context, serviceID string) error
}

var _ Registrar = (*bus.Manager)(nil)

// EnsureAdmin makes the admin service of k exist as the admin file says
// ([AdminServiceID], every permission in [AllPermissions], the file's
// secret). An existing admin record is kept only when the file's secret
// verifies against it and it holds every permission; any other record
// (overwritten, tampered with, or left by an older data dir) is replaced,
// so the admin file always logs in with full rights.
func EnsureAdmin(ctx context.Context, r Registrar, k *Keys) error {
	want := bus.ServiceCredential{ServiceID: k.Admin.ServiceID, ServiceName: "session-bus admin", Permissions: AllPermissions}
	_, err := r.RegisterService(ctx, want, k.Admin.Secret)
	if !errors.Is(err, bus.ErrServiceExists) {
		if err != nil {
			return fmt.Errorf("auth: register admin: %w", err)
		}
		return nil
	}
	cur, err := r.VerifyService(ctx, k.Admin.ServiceID, k.Admin.Secret)
	if err == nil && hasAll(cur.Permissions, AllPermissions) {
		return nil
	}
	if err != nil && !errors.Is(err, bus.ErrUnauthenticated) && !errors.Is(err, bus.ErrRateLimited) {
		return fmt.Errorf("auth: verify admin: %w", err)
	}
	if err := r.RemoveService(ctx, k.Admin.ServiceID); err != nil {
		return fmt.Errorf("auth: replace admin: %w", err)
	}
	if _, err := r.RegisterService(ctx, want, k.Admin.Secret); err != nil {
		return fmt.Errorf("auth: replace admin: %w", err)
	}
	return nil
}

func hasAll(have, want []string) bool {
	for _, p := range want {
		if !slices.Contains(have, p) {
			return false
		}
	}
	return true
}
