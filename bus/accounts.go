package bus

import (
	"context"
	"fmt"
	"time"
)

// Accounts gives every registered service a NATS account of its own:
// the account's imports of the bus's subjects are the service's
// permissions, and the service logs in with a NATS credentials file
// (.creds: a user JWT and its nkey seed) rather than a secret. The NATS
// server enforces both, so a request a service may not make never reaches
// the bus, and the bus's answers go back only to the requesting account.
// auth.Accounts is the implementation; [WithAccounts] installs it.
type Accounts interface {
	// Provision creates cred's account and one user in it, and returns
	// the account's public key and the user's credentials file.
	Provision(ctx context.Context, cred ServiceCredential) (account string, creds []byte, err error)
	// Reissue returns a new user's credentials for cred's account. Users
	// issued before it keep working for grace, then are revoked (a grace
	// of 0 revokes them at once).
	Reissue(ctx context.Context, cred ServiceCredential, grace time.Duration) (creds []byte, err error)
	// Revoke ends cred's account: no imports, every user revoked, its
	// connections closed.
	Revoke(ctx context.Context, cred ServiceCredential) error
	// Undo revokes an account Provision made that the caller cannot use
	// (its registration failed), even when ctx has ended, logging what it
	// could not undo.
	Undo(ctx context.Context, cred ServiceCredential)
}

// WithAccounts makes [Manager.RegisterService] and
// [Manager.RotateService] return NATS credentials files instead of
// secrets, and [Manager.RemoveService] revoke the service's account.
// Secrets are refused then, and VerifyService verifies nothing.
func WithAccounts(a Accounts) Option {
	return func(o *options) error {
		if a == nil {
			return fmt.Errorf("%w: nil accounts", ErrInvalidConfig)
		}
		o.accounts = a
		return nil
	}
}
