package app

import (
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

func startOn(t *testing.T, dir string) *App {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Auth = AuthNone
	cfg.Listen, cfg.DataDir = "127.0.0.1:-1", dir
	a, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return a
}

// bucketKeys lists every key of the sessions bucket.
func bucketKeys(t *testing.T, a *App) string {
	t.Helper()
	keys, err := a.store.Bucket().Keys(context.Background())
	require.NoError(t, err)
	return strings.Join(keys, " ")
}

// TestApp_TokenKeyGeneratedForANewBucket: a new data dir gets a random
// token key (0600) that fingerprints tokens and survives a restart.
func TestApp_TokenKeyGeneratedForANewBucket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startOn(t, dir)
	info, err := os.Stat(filepath.Join(dir, tokenKeyFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	data, err := os.ReadFile(filepath.Join(dir, tokenKeyFile))
	require.NoError(t, err)
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	require.Len(t, key, 32)

	ctx := context.Background()
	s, err := a.Manager().CreateSession(ctx, "u", "the-users-token")
	require.NoError(t, err)
	keys := bucketKeys(t, a)
	assert.Contains(t, keys, bus.TokenFingerprint(key, "the-users-token"), "fingerprinted with the generated key")
	assert.NotContains(t, keys, bus.TokenFingerprint(nil, "the-users-token"), "not with no key")
	require.NoError(t, a.Close())

	a = startOn(t, dir)
	defer func() { require.NoError(t, a.Close()) }()
	got, err := a.Manager().GetSessionByToken(ctx, "the-users-token")
	require.NoError(t, err, "the same key after a restart")
	assert.Equal(t, s.SessionID, got.SessionID)
}

// TestApp_TokenKeyKeepsAnOlderBucketReadable: a data dir whose bucket was
// made without a token key (an older release) gets none, so its sessions
// are still found by token.
func TestApp_TokenKeyKeepsAnOlderBucketReadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startOn(t, dir)
	require.NoError(t, os.Remove(filepath.Join(dir, tokenKeyFile)))
	require.NoError(t, a.Close())

	// What an older release did: sessions fingerprinted with no key.
	a = startOn(t, dir)
	_, err := os.Stat(filepath.Join(dir, tokenKeyFile))
	require.ErrorIs(t, err, os.ErrNotExist, "no key for a bucket that predates it")
	ctx := context.Background()
	s, err := a.Manager().CreateSession(ctx, "u", "old-token")
	require.NoError(t, err)
	assert.Contains(t, bucketKeys(t, a), bus.TokenFingerprint(nil, "old-token"))
	require.NoError(t, a.Close())

	a = startOn(t, dir)
	defer func() { require.NoError(t, a.Close()) }()
	got, err := a.Manager().GetSessionByToken(ctx, "old-token")
	require.NoError(t, err)
	assert.Equal(t, s.SessionID, got.SessionID)
}
