package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
// permission) exist with an account of its own, and its credentials file
// at path log in to that account. A file that names another account (a
// record replaced, a data dir restored) or is missing gets the admin
// registered again and a new file; it reports whether it wrote one. r must
// be a manager with [bus.WithAccounts].
func EnsureAdminCreds(ctx context.Context, r Registrar, services ServiceLookup, path string) (bool, error) {
	if account, err := credsAccount(path); err == nil {
		rec, err := services.GetService(ctx, AdminServiceID)
		if err == nil && rec.Credential.Account == account && hasAll(rec.Credential.Permissions, AllPermissions) {
			return false, nil
		}
		if err != nil && !errors.Is(err, bus.ErrServiceNotFound) {
			return false, fmt.Errorf("auth: read admin: %w", err)
		}
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

// credsAccount returns the account a credentials file's user belongs to.
func credsAccount(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return "", err
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", err
	}
	if uc.IssuerAccount != "" {
		return uc.IssuerAccount, nil
	}
	return uc.Issuer, nil
}

// WriteCredsFile writes a credentials file, mode 0600, replacing any
// file at path through a temp file renamed into place (so an older file's
// looser mode is not kept).
func WriteCredsFile(path string, creds []byte) error { return writeFileAtomic(path, creds) }

// IsNATSCreds reports whether data is a NATS credentials file (a user JWT
// and its seed) rather than a bus credentials file of callout mode.
func IsNATSCreds(data []byte) bool {
	return strings.Contains(string(data), "-----BEGIN NATS USER JWT-----")
}

// NATSCredsService returns the service a NATS credentials file written by
// the bus logs in as: its user's name.
func NATSCredsService(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	if err := bus.ValidateServiceID(uc.Name); err != nil {
		return "", fmt.Errorf("%w: %s: the user is not a bus service", ErrKeyFile, path)
	}
	return uc.Name, nil
}
