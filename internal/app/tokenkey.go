package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// tokenKeyFile holds the HMAC key of token fingerprints, hex, in the data
// dir (mode 0600): every bus process on one bucket needs the same key.
const tokenKeyFile = "token.key"

// loadTokenKey returns the token fingerprint key kept in dataDir,
// generating one when the sessions bucket is new. A bucket that already
// holds sessions fingerprinted without a key (made by an older release)
// keeps running without one: a new key would make their tokens unknown.
func loadTokenKey(ctx context.Context, js jetstream.JetStream, dataDir, bucket string) ([]byte, error) {
	path := filepath.Join(dataDir, tokenKeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("app: token key %s: not hex", path)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("app: token key: %w", err)
	}
	if _, err := js.KeyValue(ctx, bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		if err != nil {
			return nil, fmt.Errorf("app: token key: %w", err)
		}
		return nil, nil // an older release's bucket: no key, as before
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: token key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another bus process won the race
		return loadTokenKey(ctx, js, dataDir, bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("app: token key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("app: token key: %w", err)
	}
	return key, nil
}
