package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"

	"github.com/session-bus/session-bus/bus"
)

// adminCredsFileName is the admin's NATS credentials file in operator
// mode, under <dataDir>/auth.
const adminCredsFileName = "admin.creds"

// AdminCredsPath is where [EnsureAdminCreds] keeps the admin's
// credentials file for dataDir.
func AdminCredsPath(dataDir string) string {
	return filepath.Join(dataDir, authDirName, adminCredsFileName)
}

// EnsureAdminCreds makes the admin service ([AdminServiceID], every
// permission) exist with an account of its own, and the credentials file
// at path log in to it. A valid admin record is kept: when the file is
// missing (another bus process's data dir), names another account, or
// holds a user that was revoked (the admin was rotated), the file gets a
// new user of the admin's account, and nobody else's admin login is
// revoked. Only a missing admin record, or one without an account or
// every permission (left by an older release, or tampered with), is
// registered anew. It reports whether it wrote the file. r must be a
// manager with [bus.WithAccounts] using a.
func EnsureAdminCreds(ctx context.Context, r Registrar, a *Accounts, path string) (bool, error) {
	rec, err := a.services.GetService(ctx, AdminServiceID)
	switch {
	case err == nil && rec.Credential.Account != "" && hasAll(rec.Credential.Permissions, AllPermissions):
		if a.credsValid(ctx, path, rec.Credential.Account) {
			return false, nil
		}
		creds, err := a.newUser(rec.Credential.Account, rec.Credential)
		if err != nil {
			return false, err
		}
		return true, writeFileAtomic(path, creds)
	case err != nil && !errors.Is(err, bus.ErrServiceNotFound):
		return false, fmt.Errorf("auth: read admin: %w", err)
	}
	if err := r.RemoveService(ctx, AdminServiceID); err != nil {
		return false, fmt.Errorf("auth: replace admin: %w", err)
	}
	creds, err := r.RegisterService(ctx, bus.ServiceCredential{ServiceID: AdminServiceID,
		ServiceName: "session-bus admin", Permissions: AllPermissions}, "")
	if err != nil {
		return false, fmt.Errorf("auth: register admin: %w", err)
	}
	if err := writeFileAtomic(path, []byte(creds)); err != nil {
		return false, err
	}
	return true, nil
}

// credsValid reports whether the credentials file at path holds a user of
// account that the account has not revoked.
func (a *Accounts) credsValid(ctx context.Context, path, account string) bool {
	uc, err := readUserClaims(path)
	if err != nil || (uc.IssuerAccount != account && uc.Issuer != account) {
		return false
	}
	ac, err := a.lookup(ctx, account)
	return err == nil && !ac.IsClaimRevoked(uc)
}

// readUserClaims decodes the user JWT of a credentials file.
func readUserClaims(path string) (*jwt.UserClaims, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return nil, err
	}
	return jwt.DecodeUserClaims(token)
}

// WriteCredsFile writes a credentials file, mode 0600, replacing any
// file at path through a temp file renamed into place (so an older file's
// looser mode is not kept).
func WriteCredsFile(path string, creds []byte) error { return writeFileAtomic(path, creds) }
