package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Secret length bounds for RegisterService.
const (
	MinSecretBytes = 16
	MaxSecretBytes = 1024
)

// RegisterService registers a service and returns its secret: the one
// given, or, when secret is empty, one generated with crypto/rand. The
// secret is stored only as an argon2id hash and never returned again.
// Errors: [ErrInvalidInput], [ErrServiceExists].
func (m *Manager) RegisterService(ctx context.Context, cred ServiceCredential, secret string) (string, error) {
	if err := ValidateServiceID(cred.ServiceID); err != nil {
		return "", err
	}
	if secret == "" {
		secret = GenerateSecret()
	}
	if len(secret) < MinSecretBytes || len(secret) > MaxSecretBytes {
		return "", fmt.Errorf("%w: secret must be %d..%d bytes", ErrInvalidInput, MinSecretBytes, MaxSecretBytes)
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
	if err := m.store.CreateService(ctx, ServiceRecord{Credential: cred, SecretHash: HashSecret(secret)}); err != nil {
		return "", m.storeErr("register service", err)
	}
	m.log.Info("service registered", keyServiceID, cred.ServiceID)
	return secret, nil
}

// VerifyService checks a service's secret and returns its credential
// (never the secret). Unknown ids and wrong secrets fail alike, with
// [ErrUnauthenticated], after the same hashing work.
func (m *Manager) VerifyService(ctx context.Context, serviceID, secret string) (ServiceCredential, error) {
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
	if !CheckSecret(r.SecretHash, secret) {
		return ServiceCredential{}, ErrUnauthenticated
	}
	return r.Credential, nil
}

// RemoveService unregisters a service; a missing one is not an error.
func (m *Manager) RemoveService(ctx context.Context, serviceID string) error {
	if err := ValidateServiceID(serviceID); err != nil {
		return err
	}
	ctx, cancel := m.withTimeout(ctx)
	defer cancel()
	if err := m.store.DeleteService(ctx, serviceID); err != nil {
		return m.storeErr("remove service", err)
	}
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
