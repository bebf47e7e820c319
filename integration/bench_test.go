package integration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/natstest"
)

// benchSessions is how many sessions reads and attribute writes spread over.
const benchSessions = 1000

// BenchmarkBus measures calls through the client against a bus on an
// embedded server with the KV store, beside raw kv.Get and kv.Put on the
// same server: the floors a bus call is built on. ns/op is wall time per
// call over all goroutines (the inverse of throughput).
func BenchmarkBus(b *testing.B) {
	for _, instances := range []int{1, 2} {
		env := newBusEnv(b, instances, time.Hour)
		ctx := context.Background()
		ids := make([]string, benchSessions)
		tokens := make([]string, benchSessions)
		for i := range ids {
			tokens[i] = fmt.Sprintf("bench-token-%d", i)
			s, err := env.client.CreateSession(ctx, fmt.Sprintf("bench-login-%d", i%100), tokens[i])
			require.NoError(b, err)
			ids[i] = s.SessionID
		}
		var created atomic.Int64
		ops := []struct {
			name string
			op   func(i int) error
		}{
			{"get", func(i int) error { _, err := env.client.GetSession(ctx, ids[i%benchSessions]); return err }},
			{"get_by_token", func(i int) error {
				_, err := env.client.GetSessionByToken(ctx, tokens[i%benchSessions])
				return err
			}},
			{"create", func(int) error {
				n := created.Add(1)
				_, err := env.client.CreateSession(ctx, fmt.Sprintf("new-%d-%d", instances, n), fmt.Sprintf("new-token-%d-%d", instances, n))
				return err
			}},
			{"set_attribute", func(i int) error {
				return env.client.SetAttribute(ctx, ids[i%benchSessions], "k", fmt.Sprint(i))
			}},
		}
		for _, o := range ops {
			for _, g := range []int{1, 16} {
				b.Run(fmt.Sprintf("op=%s/instances=%d/goroutines=%d", o.name, instances, g), func(b *testing.B) {
					runParallel(b, g, o.op)
				})
			}
		}
	}

	// Raw KV on a server of its own, with a bucket configured as the
	// sessions bucket is.
	srv := natstest.RunServer(b)
	js := natstest.JetStream(b, srv)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{
		Bucket: "bench-raw", History: 1, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Hour})
	require.NoError(b, err)
	ctx := context.Background()
	value := []byte(`{"session_id":"00000000-0000-4000-8000-000000000000","login_id":"bench-login","service_id":"it-client",` +
		`"create_time":"2026-01-01T00:00:00Z","last_access":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T01:00:00Z",` +
		`"attributes":{"k":"` + strings.Repeat("v", 16) + `"},"token_fp":"` + strings.Repeat("f", 43) + `"}`)
	for i := range benchSessions {
		_, err := kv.Put(ctx, fmt.Sprintf("k%d", i), value)
		require.NoError(b, err)
	}
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("op=kv_get/goroutines=%d", g), func(b *testing.B) {
			runParallel(b, g, func(i int) error { _, err := kv.Get(ctx, fmt.Sprintf("k%d", i%benchSessions)); return err })
		})
		b.Run(fmt.Sprintf("op=kv_put/goroutines=%d", g), func(b *testing.B) {
			runParallel(b, g, func(i int) error { _, err := kv.Put(ctx, fmt.Sprintf("k%d", i%benchSessions), value); return err })
		})
	}
}

// runParallel runs b.N calls of op on g goroutines and reports the p99
// latency and the throughput.
func runParallel(b *testing.B, g int, op func(i int) error) {
	b.ReportAllocs()
	lat := make([][]time.Duration, g)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range g {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(int(i)); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1e3, "p99-ms")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}
