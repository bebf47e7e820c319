package app

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
	"github.com/session-bus/session-bus/sessioncache"
)

// ErrInvalidConfig: a Config field is out of range.
var ErrInvalidConfig = errors.New("app: invalid config")

// ErrShutdownTimeout is returned by [App.Close] when a stop phase overran
// its deadline.
var ErrShutdownTimeout = errors.New("app: shutdown timed out")

// SyncMode is how the embedded server syncs JetStream writes to disk.
type SyncMode string

const (
	// SyncDefault lets the server batch fsyncs (every 2 minutes by default):
	// fast, but a power loss can drop acknowledged writes.
	SyncDefault SyncMode = "default"
	// SyncAlways fsyncs every write (sync_interval: always): durable across
	// power loss, at several times the write cost.
	SyncAlways SyncMode = "always"
)

// AuthMode is how services authenticate to NATS.
type AuthMode string

// Auth modes.
const (
	AuthCallout  AuthMode = "callout"
	AuthAccounts AuthMode = "accounts"
	AuthNone     AuthMode = "none"
)

// Config is everything a session-bus process needs. DefaultConfig states
// every default.
type Config struct {
	// NATSURL of an external NATS; empty runs an embedded server.
	NATSURL string
	// NATSCreds is a creds file for the external NATS; NATSUser and
	// NATSPassword a user/password pair instead.
	NATSCreds    string
	NATSUser     string
	NATSPassword string

	// Auth is how services log in. AuthAccounts (the default) runs the
	// server in operator mode (the embedded one, or an external one set up
	// by `auth-config --auth accounts`): the bus's data
	// lives in an account no service can log in to, each service gets an
	// account of its own whose imports are its permissions, and services
	// log in with NATS credentials files (.creds); see auth.Accounts.
	// AuthCallout (the releases before; `auth-config --auth callout`
	// sets up an external server) makes the bus the server's auth callout: services log in
	// with id and secret and get subject permissions, but share the
	// account of the bus's data, so the bus's replies can be aimed at it.
	// AuthNone leaves authentication to the NATS deployment (or to nobody,
	// for development).
	Auth AuthMode

	// TLSCert and TLSKey (PEM files) make the embedded server accept only
	// TLS client connections: tokens cross the wire in create and
	// get_by_token. With TLSClientCA, clients must also present a
	// certificate signed by that CA. Default: no TLS. The bus's own
	// connections to its embedded server are in-process and need none.
	TLSCert, TLSKey, TLSClientCA string

	// MaxPendingBytes bounds what the embedded server buffers for one
	// client that does not read (a service that never reads its replies):
	// past it, or when a write to it blocks WriteDeadline, the server cuts
	// the client off as a slow consumer. So the server's memory for
	// clients is at most connections x MaxPendingBytes. Defaults 8 MiB
	// (the server's own default is 64 MiB) and 5s.
	MaxPendingBytes int64
	WriteDeadline   time.Duration

	// Listen is the embedded server's client address. Default 127.0.0.1:4222.
	Listen string
	// DataDir holds the embedded server's JetStream data. Default ./session-bus-data.
	DataDir string
	// Sync is the embedded server's disk sync mode. Default SyncDefault.
	Sync SyncMode

	// Store is the KV bucket setup (names, replicas).
	Store kvstore.Config

	// ServiceID is the bus's own service id. Default "session-bus".
	ServiceID string
	// IdleTimeout ends a session not used for this long. Default 30m.
	IdleTimeout time.Duration
	// MaxLifetime caps a session's life; 0 means no cap. Default 24h.
	MaxLifetime time.Duration
	// TouchInterval bounds how often a read extends a session; 0 derives it
	// from the idle timeout (a tenth, at least 1 s).
	TouchInterval time.Duration
	// MaxSessions per login; 0 means no cap.
	MaxSessions int
	// Evict says what happens at MaxSessions: "evict" (oldest) or "refuse".
	Evict string
	// TokenKey is the HMAC key of token fingerprints; every bus instance on
	// one bucket needs the same. Default: the key in <DataDir>/token.key,
	// generated (32 random bytes, mode 0600) when the sessions bucket is
	// created; a bucket made by an older release without one keeps using
	// no key, so its sessions stay readable by token.
	TokenKey []byte
	// AttributeKeyID and AttributeKeys turn on encryption of attribute
	// values at rest (AES-GCM, bus.WithAttributeEncryption): values are
	// sealed with the key AttributeKeyID and opened with the key id stored
	// beside them, so older keys stay in AttributeKeys for rotation. Every
	// bus instance on one bucket needs the same. Default: off. See
	// ParseAttributeKeys.
	AttributeKeyID string
	AttributeKeys  map[string][]byte
	// MaxInFlight bounds concurrent requests per process. Default natsapi.DefaultMaxInFlight.
	MaxInFlight int
	// CacheEntries bounds the bus's coherent copy of hot sessions, which
	// answers reads without a store round trip; 0 turns it off. Default
	// sessioncache.DefaultMaxEntries.
	CacheEntries int
	// MaxInFlightPerCaller bounds one calling service's share of
	// MaxInFlight. Default 0: half of MaxInFlight.
	MaxInFlightPerCaller int

	// Events is the events stream (name, retention, replicas).
	Events events.StreamConfig
	// Audit is the audit stream (service registry changes, and access
	// records when AuditAccess is on).
	Audit events.AuditConfig
	// RelayLeaseTTL is how long a dead bus instance's event relay holds the
	// lease before another instance's relay takes over: the longest delay
	// of events when an instance dies. Default 3s.
	RelayLeaseTTL time.Duration
	// AuditAccess records every read of a session by a service other than
	// its creator. Default off: it adds a publish to those reads.
	AuditAccess bool

	// ShutdownTimeout bounds the graceful stop of the bus's own parts
	// (callout, service, relay, connections); past it their connections
	// are closed at once. Default 10s.
	ShutdownTimeout time.Duration
	// ServerShutdownTimeout bounds the embedded server's shutdown, which
	// always runs after the bus's parts stopped or timed out: it writes
	// every stream's and consumer's state (about 10 ms a consumer here).
	// Default 30s.
	ServerShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults stated on each Config field.
func DefaultConfig() Config {
	return Config{
		Auth:                  AuthAccounts,
		Listen:                "127.0.0.1:4222",
		DataDir:               "session-bus-data",
		Sync:                  SyncDefault,
		Store:                 kvstore.DefaultConfig(),
		ServiceID:             "session-bus",
		IdleTimeout:           30 * time.Minute,
		MaxLifetime:           24 * time.Hour,
		Evict:                 "evict",
		MaxInFlight:           natsapi.DefaultMaxInFlight,
		CacheEntries:          sessioncache.DefaultMaxEntries,
		Events:                events.DefaultStreamConfig(),
		Audit:                 events.DefaultAuditConfig(),
		RelayLeaseTTL:         events.DefaultRelayConfig().LeaseTTL,
		ShutdownTimeout:       10 * time.Second,
		ServerShutdownTimeout: 30 * time.Second,
		MaxPendingBytes:       8 << 20,
		WriteDeadline:         5 * time.Second,
	}
}

func (c Config) validate() error {
	switch {
	case c.NATSURL == "" && c.DataDir == "":
		return fmt.Errorf("%w: the embedded server needs a data dir", ErrInvalidConfig)
	case c.Auth != AuthCallout && c.Auth != AuthAccounts && c.Auth != AuthNone:
		return fmt.Errorf("%w: auth must be %q, %q or %q", ErrInvalidConfig, AuthCallout, AuthAccounts, AuthNone)
	case c.Auth != AuthNone && c.DataDir == "":
		return fmt.Errorf("%w: auth %s keeps its keys in the data dir", ErrInvalidConfig, c.Auth)
	case c.Auth == AuthAccounts && c.Events.Name != auth.DefaultEventsStream:
		return fmt.Errorf("%w: auth accounts exports the events stream %s; it cannot be renamed", ErrInvalidConfig, auth.DefaultEventsStream)
	case c.Sync != SyncDefault && c.Sync != SyncAlways:
		return fmt.Errorf("%w: sync must be %q or %q", ErrInvalidConfig, SyncDefault, SyncAlways)
	case c.Evict != "evict" && c.Evict != "refuse":
		return fmt.Errorf("%w: evict policy must be evict or refuse", ErrInvalidConfig)
	case (c.TLSCert == "") != (c.TLSKey == "") || (c.TLSClientCA != "" && c.TLSCert == ""):
		return fmt.Errorf("%w: TLS needs a certificate and its key (and a client CA only with them)", ErrInvalidConfig)
	case (c.TLSCert != "") && c.NATSURL != "":
		return fmt.Errorf("%w: TLS options configure the embedded server; an external NATS has its own", ErrInvalidConfig)
	case c.MaxPendingBytes < 1<<20 || c.WriteDeadline <= 0:
		return fmt.Errorf("%w: max pending must be at least 1 MiB and the write deadline positive", ErrInvalidConfig)
	case c.ShutdownTimeout <= 0 || c.ServerShutdownTimeout <= 0:
		return fmt.Errorf("%w: shutdown timeouts must be positive", ErrInvalidConfig)
	}
	return nil
}

func (c Config) managerOptions() []bus.Option {
	policy := bus.EvictOldest
	if c.Evict == "refuse" {
		policy = bus.RefuseNew
	}
	opts := []bus.Option{
		bus.WithMaxLifetime(c.MaxLifetime),
		bus.WithTouchInterval(c.TouchInterval),
		bus.WithMaxSessions(c.MaxSessions, policy),
		bus.WithTokenKey(c.TokenKey),
	}
	if c.AttributeKeyID != "" {
		opts = append(opts, bus.WithAttributeEncryption(c.AttributeKeyID, c.AttributeKeys))
	}
	return opts
}

// ParseAttributeKeys reads attribute encryption keys written as
// "id:hexkey" entries separated by commas or newlines; the first is the
// current key, the others only open older values. Ids are as service ids;
// keys are 16, 24 or 32 bytes. Errors never quote a key.
func ParseAttributeKeys(text string) (current string, keys map[string][]byte, err error) {
	keys = map[string][]byte{}
	for _, entry := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, hexKey, ok := strings.Cut(entry, ":")
		if !ok || bus.ValidateServiceID(id) != nil {
			return "", nil, fmt.Errorf("%w: attribute keys: want id:hexkey entries", ErrInvalidConfig)
		}
		key, err := hex.DecodeString(strings.TrimSpace(hexKey))
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			return "", nil, fmt.Errorf("%w: attribute key %s: want 16, 24 or 32 bytes in hex", ErrInvalidConfig, id)
		}
		if _, dup := keys[id]; dup {
			return "", nil, fmt.Errorf("%w: attribute key %s given twice", ErrInvalidConfig, id)
		}
		keys[id] = key
		if current == "" {
			current = id
		}
	}
	if current == "" {
		return "", nil, fmt.Errorf("%w: attribute keys: none given", ErrInvalidConfig)
	}
	return current, keys, nil
}
