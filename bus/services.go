package bus

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Secret length bounds for RegisterService.
const (
	MinSecretBytes = 16
	MaxSecretBytes = 1024
)

// RegisterService registers a service and returns its secret: the one
// given, or, when secret is empty, one generated with crypto/rand. The
// secret is stored only as an argon2id hash and never returned again.
// Every permission must be one of [AllPermissions]: a misspelt name would
// be stored and grant nothing. Errors: [ErrInvalidInput] (naming an
// unknown permission), [ErrTooLarge], [ErrServiceExists].
func (m *Manager) RegisterService(ctx context.Context, cred ServiceCredential, secret string) (string, error) {
	if err := ValidateServiceID(cred.ServiceID); err != nil {
		return "", err
	}
	if err := ValidatePermissions(cred.Permissions); err != nil {
		return "", err
	}
	if m.o.accounts != nil && secret != "" {
		return "", errSecretWithAccounts
	}
	if m.o.accounts == nil {
		var err error
		if secret, err = checkSecret(secret); err != nil {
			return "", err
		}
	}
	if cred.CreatedAt.IsZero() {
		cred.CreatedAt = m.o.now().UTC()
	}
	if cred.ServiceName == "" {
		cred.ServiceName = cred.ServiceID
	}
	cred.Permissions = slices.Clone(cred.Permissions)
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	if m.o.accounts != nil {
		return m.registerAccount(ctx, cred)
	}
	if err := m.store.CreateService(ctx, ServiceRecord{Credential: cred, SecretHash: HashSecret(secret)}); err != nil {
		return "", m.storeErr("register service", err)
	}
	m.log.Info("service registered", keyServiceID, cred.ServiceID)
	m.auditService(ctx, ServiceRegistered, cred.ServiceID)
	return secret, nil
}

// registerAccount registers cred with an account of its own and returns
// the credentials file of its first user.
func (m *Manager) registerAccount(ctx context.Context, cred ServiceCredential) (string, error) {
	// A taken id is refused before an account is made for it; the create
	// below still decides a race.
	switch _, err := m.store.GetService(ctx, cred.ServiceID); {
	case err == nil:
		return "", ErrServiceExists
	case !errors.Is(err, ErrServiceNotFound):
		return "", m.storeErr("register service", err)
	}
	account, creds, err := m.o.accounts.Provision(ctx, cred)
	if err != nil {
		return "", fmt.Errorf("%w: register service: %w", ErrUnavailable, err)
	}
	cred.Account = account
	if err := m.store.CreateService(ctx, ServiceRecord{Credential: cred}); err != nil {
		m.o.accounts.Undo(ctx, cred)
		return "", m.storeErr("register service", err)
	}
	m.log.Info("service registered", keyServiceID, cred.ServiceID, "account", account)
	m.auditService(ctx, ServiceRegistered, cred.ServiceID)
	return string(creds), nil
}

// errSecretWithAccounts refuses a secret given where services log in with
// NATS credentials ([WithAccounts]).
var errSecretWithAccounts = fmt.Errorf("%w: services log in with NATS credentials here, not secrets", ErrInvalidInput)

// checkSecret generates a secret when none is given and bounds its length.
func checkSecret(secret string) (string, error) {
	if secret == "" {
		return GenerateSecret(), nil
	}
	if len(secret) < MinSecretBytes || len(secret) > MaxSecretBytes {
		return "", fmt.Errorf("%w: secret must be %d..%d bytes", ErrInvalidInput, MinSecretBytes, MaxSecretBytes)
	}
	return secret, nil
}

// VerifyService checks a service's secret and returns its credential
// (never the secret). Unknown ids and wrong secrets fail alike, with
// [ErrUnauthenticated], after the same hashing work. After 5 failures of
// one caller for one id within a minute, that caller gets
// [ErrRateLimited] for that id until the minute is over. A caller is the
// acting service in ctx (see [ContextWithService]; the NATS service sets
// it) and the remote address in ctx (see [ContextWithRemote]; the auth
// callout sets it for logins): one caller's failures never lock out
// another. Counted per bus process, in bounded memory.
func (m *Manager) VerifyService(ctx context.Context, serviceID, secret string) (ServiceCredential, error) {
	now := m.o.now()
	limitKey := verifyKeyOf(ctx, serviceID)
	if m.limiter.blocked(limitKey, now) {
		m.reportFailedVerify(ctx, serviceID)
		return ServiceCredential{}, ErrRateLimited
	}
	cred, err := m.verify(ctx, serviceID, secret, now)
	if errors.Is(err, ErrUnauthenticated) {
		m.limiter.fail(limitKey, now)
		m.reportFailedVerify(ctx, serviceID)
	}
	if err == nil {
		m.limiter.reset(limitKey)
	}
	return cred, err
}

func (m *Manager) verify(ctx context.Context, serviceID, secret string, now time.Time) (ServiceCredential, error) {
	if ValidateServiceID(serviceID) != nil || len(secret) > MaxSecretBytes {
		CheckSecret(dummyHash, secret)
		return ServiceCredential{}, ErrUnauthenticated
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	r, err := m.store.GetService(ctx, serviceID)
	if err != nil {
		CheckSecret(dummyHash, secret)
		if errors.Is(err, ErrServiceNotFound) {
			return ServiceCredential{}, ErrUnauthenticated
		}
		return ServiceCredential{}, m.storeErr("get service", err)
	}
	if m.checkSecret(r.SecretHash, secret) {
		return r.Credential, nil
	}
	if r.PrevSecretHash != "" && now.Before(r.PrevValidUntil) && m.checkSecret(r.PrevSecretHash, secret) {
		return r.Credential, nil
	}
	return ServiceCredential{}, ErrUnauthenticated
}

// checkSecret is [CheckSecret] that remembers its successes, so a service
// that logs in again (a reconnect, a burst of connections) costs an HMAC,
// not a password hash. It remembers an HMAC of the stored hash and the
// secret under a key that exists only in this process's memory; a rotation
// or removal changes or drops the stored hash, so it forgets them.
// Failures always pay the full hash.
func (m *Manager) checkSecret(hash, secret string) bool {
	h := hmac.New(sha256.New, m.verifiedKey[:])
	h.Write([]byte(hash))
	h.Write([]byte{0})
	h.Write([]byte(secret))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	if _, ok := m.verified.Get(k); ok {
		return true
	}
	if !CheckSecret(hash, secret) {
		return false
	}
	m.verified.Put(k, struct{}{})
	return true
}

// sanitizeID keeps a logged id short and printable: ids that failed
// validation are attacker-controlled.
func sanitizeID(id string) string {
	if ValidateServiceID(id) == nil {
		return id
	}
	return "(invalid id)"
}

// RotateService gives a service a new secret (generated when secret is
// empty) and returns it. The previous secret keeps working for grace, so
// callers can switch over (sa-token's Same-Token overlap); a grace of 0
// ends it at once. Errors: [ErrInvalidInput], [ErrServiceNotFound].
func (m *Manager) RotateService(ctx context.Context, serviceID, secret string, grace time.Duration) (string, error) {
	if err := ValidateServiceID(serviceID); err != nil {
		return "", err
	}
	if grace < 0 {
		return "", fmt.Errorf("%w: grace must not be negative", ErrInvalidInput)
	}
	if m.o.accounts != nil {
		return m.rotateAccount(ctx, serviceID, secret, grace)
	}
	secret, err := checkSecret(secret)
	if err != nil {
		return "", err
	}
	hash := HashSecret(secret)
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	err = retryCAS(ctx, ErrConflict, func() error {
		r, err := m.store.GetService(ctx, serviceID)
		if err != nil {
			return m.storeErr("rotate service", err)
		}
		r.PrevSecretHash, r.PrevValidUntil = "", time.Time{}
		if grace > 0 {
			r.PrevSecretHash, r.PrevValidUntil = r.SecretHash, m.o.now().Add(grace).UTC()
		}
		r.SecretHash = hash
		if err := m.store.UpdateService(ctx, r); err != nil {
			return m.storeErr("rotate service", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	m.log.Info("service secret rotated", keyServiceID, serviceID, "grace", grace)
	m.auditService(ctx, ServiceRotated, serviceID)
	return secret, nil
}

// rotateAccount issues a new user of the service's account; the older
// ones are revoked after grace.
func (m *Manager) rotateAccount(ctx context.Context, serviceID, secret string, grace time.Duration) (string, error) {
	if secret != "" {
		return "", errSecretWithAccounts
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	r, err := m.store.GetService(ctx, serviceID)
	if err != nil {
		return "", m.storeErr("rotate service", err)
	}
	creds, err := m.o.accounts.Reissue(ctx, r.Credential, grace)
	if err != nil {
		return "", fmt.Errorf("%w: rotate service: %w", ErrUnavailable, err)
	}
	m.log.Info("service credentials reissued", keyServiceID, serviceID, "grace", grace)
	m.auditService(ctx, ServiceRotated, serviceID)
	return string(creds), nil
}

// RemoveService unregisters a service; a missing one is not an error.
// With accounts the service's account is revoked first, so a failure
// leaves the record for another try.
func (m *Manager) RemoveService(ctx context.Context, serviceID string) error {
	if err := ValidateServiceID(serviceID); err != nil {
		return err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	if m.o.accounts != nil {
		r, err := m.store.GetService(ctx, serviceID)
		switch {
		case errors.Is(err, ErrServiceNotFound):
			return nil
		case err != nil:
			return m.storeErr("remove service", err)
		}
		if err := m.o.accounts.Revoke(ctx, r.Credential); err != nil {
			return fmt.Errorf("%w: remove service: %w", ErrUnavailable, err)
		}
	}
	if err := m.store.DeleteService(ctx, serviceID); err != nil {
		return m.storeErr("remove service", err)
	}
	m.log.Info("service removed", keyServiceID, serviceID)
	m.auditService(ctx, ServiceRemoved, serviceID)
	return nil
}

// ListServices returns every registered service, ordered by id.
func (m *Manager) ListServices(ctx context.Context) ([]ServiceCredential, error) {
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	recs, err := m.store.ListServices(ctx)
	if err != nil {
		return nil, m.storeErr("list services", err)
	}
	out := make([]ServiceCredential, len(recs))
	for i, r := range recs {
		out[i] = r.Credential
	}
	return out, nil
}
