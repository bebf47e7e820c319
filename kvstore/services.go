package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// CreateService implements bus.Store.
func (st *Store) CreateService(ctx context.Context, r bus.ServiceRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("kvstore: encode service: %w", err)
	}
	if _, err := st.services.Create(ctx, r.Credential.ServiceID, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("kvstore: create service: %w", bus.ErrServiceExists)
		}
		return fmt.Errorf("kvstore: create service: %w", err)
	}
	return nil
}

// GetService implements bus.Store.
func (st *Store) GetService(ctx context.Context, serviceID string) (bus.ServiceRecord, error) {
	msg, err := st.lastService(ctx, serviceID)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return bus.ServiceRecord{}, fmt.Errorf("kvstore: get service: %w", bus.ErrServiceNotFound)
		}
		return bus.ServiceRecord{}, fmt.Errorf("kvstore: get service: %w", err)
	}
	var r bus.ServiceRecord
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return bus.ServiceRecord{}, fmt.Errorf("kvstore: decode service: %w", err)
	}
	r.Revision = msg.Sequence
	return r, nil
}

// UpdateService implements bus.Store.
func (st *Store) UpdateService(ctx context.Context, r bus.ServiceRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("kvstore: encode service: %w", err)
	}
	if _, err := st.services.Update(ctx, r.Credential.ServiceID, data, r.Revision); err != nil {
		if isWrongLastSeq(err) || errors.Is(err, jetstream.ErrKeyExists) {
			if _, gerr := st.lastService(ctx, r.Credential.ServiceID); errors.Is(gerr, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("kvstore: update service: %w", bus.ErrServiceNotFound)
			}
			return fmt.Errorf("kvstore: update service: %w", bus.ErrConflict)
		}
		return fmt.Errorf("kvstore: update service: %w", err)
	}
	return nil
}

// DeleteService implements bus.Store.
func (st *Store) DeleteService(ctx context.Context, serviceID string) error {
	if err := st.services.Purge(ctx, serviceID); err != nil {
		return fmt.Errorf("kvstore: delete service: %w", err)
	}
	return nil
}

// ListServices implements bus.Store.
func (st *Store) ListServices(ctx context.Context) ([]bus.ServiceRecord, error) {
	lister, err := st.services.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list services: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []bus.ServiceRecord
	for key := range lister.Keys() {
		r, err := st.GetService(ctx, key)
		if errors.Is(err, bus.ErrServiceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b bus.ServiceRecord) int {
		return strings.Compare(a.Credential.ServiceID, b.Credential.ServiceID)
	})
	return out, nil
}
