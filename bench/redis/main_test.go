package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/app"
)

// TestRun runs every row for a moment: the bus rows always, the Redis
// rows only when REDIS_ADDR names a Redis (run.sh sets it).
func TestRun(t *testing.T) {
	cfg := defaultConfig()
	cfg.RedisAddr = os.Getenv("REDIS_ADDR")
	cfg.Duration, cfg.Warmup = 50*time.Millisecond, 10*time.Millisecond
	cfg.Sessions, cfg.Revocations = 20, 2
	if testing.Short() {
		cfg.Auth = []app.AuthMode{app.AuthNone}
	}
	rep, err := run(context.Background(), cfg, func(string) {})
	require.NoError(t, err)

	byKey := map[string]Row{}
	for _, r := range rep.Rows {
		assert.Zero(t, r.Errors, "%s %s: %s", r.Target, r.Op, r.Error)
		assert.NotZero(t, r.Ops, "%s %s", r.Target, r.Op)
		byKey[r.Target+" "+r.Key] = r
	}
	for _, mode := range cfg.Auth {
		target := "bus/" + string(mode)
		for _, key := range []string{keyKVGet, keyKVPut, "cached-get", "cached-get-attribute", "get", "get-by-token", "create", "list", "revocation"} {
			require.Contains(t, byKey, target+" "+key)
		}
		assert.Equal(t, uint64(readersN*3*cfg.Revocations), byKey[target+" revocation"].Ops, "one lag per reader and change")
		want := 3 // cached get: Redis GET, kv.Get, DoCache
		if cfg.RedisAddr == "" {
			want = 1 // kv.Get only
		}
		assert.Len(t, byKey[target+" cached-get"].Ratios, want)
	}
	if cfg.RedisAddr == "" {
		t.Log("REDIS_ADDR not set: Redis rows skipped")
	} else {
		require.Contains(t, byKey, "redis "+keyDoCache)
	}

	var out bytes.Buffer
	require.NoError(t, rep.writeTable(&out))
	assert.Contains(t, out.String(), "cached get")
	out.Reset()
	require.NoError(t, rep.writeJSON(&out))
	assert.True(t, strings.HasPrefix(out.String(), "{"))
}

func TestModelName(t *testing.T) {
	assert.Equal(t, "AMD EPYC", modelName(strings.NewReader("processor\t: 0\nmodel name\t: AMD EPYC\n")))
	assert.Empty(t, modelName(strings.NewReader("")))
}
