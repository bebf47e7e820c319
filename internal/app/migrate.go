package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
)

// moveGlobalAccountData moves the JetStream data of a data dir used
// without accounts (the server's global account, "$G") to the BUS
// account, so that switching to --auth accounts keeps every session,
// service record and event. It does nothing when there is no such data or
// the BUS account already has some.
func moveGlobalAccountData(dataDir, busAccount string, log *slog.Logger) error {
	js := filepath.Join(dataDir, "jetstream")
	from, to := filepath.Join(js, "$G"), filepath.Join(js, busAccount)
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(to); err == nil {
		log.Warn("both the global account and the bus account hold JetStream data; using the bus account's", "global", from)
		return nil
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("app: move JetStream data to the bus account: %w", err)
	}
	log.Info("moved the JetStream data of the global account to the bus account", "account", busAccount)
	return nil
}

// migrateServices gives every service registered with a secret (a data
// dir used in callout mode) an account of its own, and writes its
// credentials file to <dataDir>/auth/creds/<id>.creds (mode 0600), once.
// The admin gets its credentials from auth.EnsureAdminCreds instead.
func (a *App) migrateServices(ctx context.Context) error {
	recs, err := a.store.ListServices(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.cfg.DataDir, "auth", "creds")
	for _, r := range recs {
		if r.Credential.Account != "" || r.Credential.ServiceID == auth.AdminServiceID {
			continue
		}
		account, creds, err := a.accounts.Provision(ctx, r.Credential)
		if err != nil {
			return err
		}
		migrated := r
		migrated.Credential.Account = account
		migrated.SecretHash, migrated.PrevSecretHash, migrated.PrevValidUntil = "", "", time.Time{}
		path := filepath.Join(dir, r.Credential.ServiceID+".creds")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			a.accounts.Undo(ctx, migrated.Credential)
			return fmt.Errorf("app: %w", err)
		}
		if err := auth.WriteCredsFile(path, creds); err != nil {
			a.accounts.Undo(ctx, migrated.Credential)
			return err
		}
		if err := a.store.UpdateService(ctx, migrated); err != nil {
			// Another bus process migrated it first; its file is the one.
			a.accounts.Undo(ctx, migrated.Credential)
			_ = os.Remove(path)
			if errors.Is(err, bus.ErrConflict) {
				continue
			}
			return err
		}
		a.log.Warn("service moved to an account of its own: give it its credentials file (it logs in with it, no longer with its secret)",
			"service_id", r.Credential.ServiceID, "creds", path)
	}
	return nil
}
