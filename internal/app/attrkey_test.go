package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAttributeKeys(t *testing.T) {
	k16, k32 := strings.Repeat("ab", 16), strings.Repeat("cd", 32)
	id, keys, err := ParseAttributeKeys("k2:" + k32 + ", k1:" + k16 + "\n")
	require.NoError(t, err)
	assert.Equal(t, "k2", id)
	assert.Len(t, keys, 2)
	for _, bad := range []string{"", "k1", "k1:zz", "k1:abcd", "bad.id:" + k16, "k1:" + k16 + ",k1:" + k32} {
		_, _, err := ParseAttributeKeys(bad)
		require.ErrorIs(t, err, ErrInvalidConfig, "%q", bad)
		assert.NotContains(t, err.Error(), k16, "an error never quotes a key")
	}
}

// With attribute keys, values are sealed at rest; after a rotation (a new
// current key, the old one kept) the old values still read.
func TestApp_AttributeKeys(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := strings.Repeat("11", 32), strings.Repeat("22", 32)
	cfg := accountsConfig(dir)
	var err error
	cfg.AttributeKeyID, cfg.AttributeKeys, err = ParseAttributeKeys("k1:" + k1)
	require.NoError(t, err)
	ctx := context.Background()
	a, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	s, err := a.Manager().CreateSession(ctx, "u1", "tok-1")
	require.NoError(t, err)
	const secretValue = "department-of-mysteries"
	require.NoError(t, a.Manager().SetAttribute(ctx, s.SessionID, "dept", secretValue))
	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, cfg.Store.Bucket)
	require.NoError(t, err)
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	for key := range keys.Keys() {
		if e, err := kv.Get(ctx, key); err == nil {
			assert.NotContains(t, string(e.Value()), secretValue, "key %s holds the value in clear", key)
		}
	}
	require.NoError(t, a.Close())

	cfg.AttributeKeyID, cfg.AttributeKeys, err = ParseAttributeKeys("k2:" + k2 + ",k1:" + k1)
	require.NoError(t, err)
	a, err = Start(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	v, ok, err := a.Manager().GetAttribute(ctx, s.SessionID, "dept")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, secretValue, v, "a value sealed with the old key reads after a rotation")
}
