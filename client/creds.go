package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// ServiceCreds is a service's login in callout mode: what a bus
// credentials file holds as JSON {"service_id": ..., "secret": ...}
// (<data-dir>/auth/admin.json, 'service add --creds-out' with --auth
// callout). Its String, GoString and LogValue never show the secret.
type ServiceCreds struct {
	ServiceID string `json:"service_id"`
	Secret    string `json:"secret"`
}

// LogValue keeps the secret out of logs.
func (c ServiceCreds) LogValue() slog.Value {
	return slog.GroupValue(slog.String("service_id", c.ServiceID), slog.String("secret", "[REDACTED]"))
}

// String keeps the secret out of %v.
func (c ServiceCreds) String() string { return "client.ServiceCreds{" + c.ServiceID + " [REDACTED]}" }

// GoString keeps the secret out of %#v.
func (c ServiceCreds) GoString() string { return c.String() }

// NATSOptions returns the options the service connects with: see
// [ConnectOptions].
func (c ServiceCreds) NATSOptions() []nats.Option { return ConnectOptions(c.ServiceID, c.Secret) }

// LoadServiceCreds reads a bus credentials file (JSON, see
// [ServiceCreds]), refusing one that group or others may access: its mode
// must be 0600 or stricter. Most callers want [CredsFileOptions], which
// reads either kind of credentials file. Errors: [ErrCredsFile].
func LoadServiceCreds(path string) (ServiceCreds, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return ServiceCreds{}, fmt.Errorf("%w: %w", ErrCredsFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return ServiceCreds{}, fmt.Errorf("%w: %s is mode %v; want 0600", ErrCredsFile, path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ServiceCreds{}, fmt.Errorf("%w: %w", ErrCredsFile, err)
	}
	var c ServiceCreds
	if err := json.Unmarshal(data, &c); err != nil {
		return ServiceCreds{}, fmt.Errorf("%w: %s: not valid JSON", ErrCredsFile, path)
	}
	if bus.ValidateServiceID(c.ServiceID) != nil || c.Secret == "" {
		return ServiceCreds{}, fmt.Errorf("%w: %s: missing service_id or secret", ErrCredsFile, path)
	}
	return c, nil
}

// natsCredsMarker starts the user JWT of a NATS credentials file.
const natsCredsMarker = "-----BEGIN NATS USER JWT-----"

// IsNATSCreds reports whether data is a NATS credentials file (a user JWT
// and its seed, as the bus writes in accounts mode) rather than a bus
// credentials file ([ServiceCreds], callout mode).
func IsNATSCreds(data []byte) bool { return strings.Contains(string(data), natsCredsMarker) }

// natsCredsService returns the service that data, the NATS credentials
// file at path, logs in as: its user's name. Errors: [ErrCredsFile].
func natsCredsService(path string, data []byte) (string, error) {
	uc, err := decodeUserClaims(data)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrCredsFile, path, err)
	}
	if err := bus.ValidateServiceID(uc.Name); err != nil {
		return "", fmt.Errorf("%w: %s: the user is not a bus service", ErrCredsFile, path)
	}
	return uc.Name, nil
}

// decodeUserClaims decodes the user JWT of a NATS credentials file.
func decodeUserClaims(data []byte) (*jwt.UserClaims, error) {
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return nil, err
	}
	return jwt.DecodeUserClaims(token)
}

// CredsFileOptions returns the nats.Options that log in with a
// credentials file the bus wrote, and the service they log in as (for
// [WithServiceID]). A NATS credentials file (accounts mode, the default:
// <data-dir>/auth/admin.creds, 'service add --creds-out') logs in with
// nats.UserCredentials, as its user, whose name is the service; replies
// may come to any inbox. A bus credentials file (callout mode:
// admin.json) logs in with [ServiceCreds.NATSOptions]. Errors:
// [ErrCredsFile].
func CredsFileOptions(path string) (opts []nats.Option, serviceID string, err error) {
	if data, err := os.ReadFile(path); err == nil && IsNATSCreds(data) {
		id, err := natsCredsService(path, data)
		if err != nil {
			return nil, "", err
		}
		return []nats.Option{nats.UserCredentials(path)}, id, nil
	}
	creds, err := LoadServiceCreds(path)
	if err != nil {
		return nil, "", err
	}
	return creds.NATSOptions(), creds.ServiceID, nil
}
