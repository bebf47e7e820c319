package integration_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/internal/relaybench"
	"github.com/session-bus/session-bus/kvstore"
)

// benchSessions is how many sessions reads and attribute writes spread over.
const benchSessions = 1000

// BenchmarkBus measures calls through the client against a bus on an
// embedded server with the KV store, beside raw kv.Get and kv.Put on the
// same server in the same run: the floors a bus call is built on. ns/op is
// wall time per call over all goroutines (the inverse of throughput).
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
			require.NoError(b, env.client.SetAttribute(ctx, s.SessionID, "k", strings.Repeat("v", 16)))
			ids[i] = s.SessionID
		}
		kv := rawBucket(b, env)
		var created atomic.Int64
		ops := []struct {
			name string
			op   func(i int) error
		}{
			{"kv_get", func(i int) error { _, err := kv.Get(ctx, fmt.Sprintf("k%d", i%benchSessions)); return err }},
			{"kv_put", func(i int) error {
				_, err := kv.Put(ctx, fmt.Sprintf("k%d", i%benchSessions), rawValue)
				return err
			}},
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
				b.Run(fmt.Sprintf("instances=%d/op=%s/goroutines=%d", instances, o.name, g), func(b *testing.B) {
					runParallel(b, g, o.op)
				})
			}
		}
	}
}

// rawValue is a stored session record's size and shape.
var rawValue = []byte(`{"session_id":"00000000-0000-4000-8000-000000000000","login_id":"bench-login","service_id":"it-client",` +
	`"create_time":"2026-01-01T00:00:00Z","last_access":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T01:00:00Z",` +
	`"attributes":{"k":"` + strings.Repeat("v", 16) + `"},"token_fingerprint":"` + strings.Repeat("f", 64) + `"}`)

// rawBucket is a bucket configured as the sessions bucket is, on env's
// server, filled with benchSessions session-sized values.
func rawBucket(b *testing.B, env *busEnv) jetstream.KeyValue {
	b.Helper()
	ctx := context.Background()
	kv, err := natstest.JetStream(b, env.srv).CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "bench-raw", History: 1, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Hour})
	require.NoError(b, err)
	for i := range benchSessions {
		_, err := kv.Put(ctx, fmt.Sprintf("k%d", i), rawValue)
		require.NoError(b, err)
	}
	return kv
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

// BenchmarkAccessAudit measures what the opt-in access audit costs a read
// by a service other than the creator (one async publish to SESSION_AUDIT),
// in-process on the KV store, beside raw kv.Get on the same server.
func BenchmarkAccessAudit(b *testing.B) {
	srv := natstest.RunServer(b)
	ctx := context.Background()
	js := natstest.JetStream(b, srv)
	st, err := kvstore.New(ctx, js, kvstore.DefaultConfig())
	require.NoError(b, err)
	auditor, err := events.NewAuditor(ctx, js, events.DefaultAuditConfig())
	require.NoError(b, err)
	record := func(_ context.Context, e bus.AccessEvent) {
		if err := auditor.RecordAsync(e); err != nil {
			b.Error(err)
		}
	}
	plain, err := bus.New(st, "creator", time.Hour, bus.WithLogger(quiet))
	require.NoError(b, err)
	audited, err := bus.New(st, "creator", time.Hour, bus.WithLogger(quiet), bus.WithAccessAudit(record))
	require.NoError(b, err)
	ids := make([]string, benchSessions)
	for i := range ids {
		s, err := plain.CreateSession(ctx, fmt.Sprintf("login-%d", i), fmt.Sprintf("token-%d", i))
		require.NoError(b, err)
		ids[i] = s.SessionID
	}
	kv := rawBucket(b, &busEnv{srv: srv})
	reader := bus.ContextWithService(ctx, "reader")
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("op=kv_get/goroutines=%d", g), func(b *testing.B) {
			runParallel(b, g, func(i int) error { _, err := kv.Get(ctx, fmt.Sprintf("k%d", i%benchSessions)); return err })
		})
		b.Run(fmt.Sprintf("op=get/audit=off/goroutines=%d", g), func(b *testing.B) {
			runParallel(b, g, func(i int) error { _, err := plain.GetSession(reader, ids[i%benchSessions]); return err })
		})
		b.Run(fmt.Sprintf("op=get/audit=on/goroutines=%d", g), func(b *testing.B) {
			runParallel(b, g, func(i int) error { _, err := audited.GetSession(reader, ids[i%benchSessions]); return err })
		})
	}
}

// BenchmarkBusHotSession: 32 callers set attributes on one session through
// the client, beside 32 raw read-modify-writes (kv.Get + kv.Update, retried)
// of one key on the same server.
func BenchmarkBusHotSession(b *testing.B) {
	const writers = 32
	env := newBusEnv(b, 1, time.Hour)
	ctx := context.Background()
	s, err := env.client.CreateSession(ctx, "hot", "hot-token")
	require.NoError(b, err)
	kv := rawBucket(b, env)
	_, err = kv.Put(ctx, "hot", []byte("{}"))
	require.NoError(b, err)
	b.Run("op=kv_cas", func(b *testing.B) {
		runParallel(b, writers, func(i int) error {
			for {
				e, err := kv.Get(ctx, "hot")
				if err != nil {
					return err
				}
				if _, err = kv.Update(ctx, "hot", rawValue, e.Revision()); !errors.Is(err, jetstream.ErrKeyExists) {
					return err
				}
			}
		})
	})
	b.Run("op=set_attribute", func(b *testing.B) {
		runParallel(b, writers, func(i int) error {
			return env.client.SetAttribute(ctx, s.SessionID, fmt.Sprintf("k%d", i%200), fmt.Sprint(i))
		})
	})
}

// BenchmarkRelayBesideClientWrites is events' BenchmarkRelayBesideWrites
// with the writes a service makes: creates through the client, over NATS,
// served by one bus instance (see package relaybench).
//
//	go test -run '^$' -bench BenchmarkRelayBesideClientWrites -benchtime 1x ./integration
func BenchmarkRelayBesideClientWrites(b *testing.B) {
	for range b.N {
		env := newBusEnv(b, 1, time.Hour)
		js := natstest.JetStream(b, env.srv)
		ctx := context.Background()
		_, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig())
		require.NoError(b, err)
		got := make(chan events.Event, 1024)
		l, err := events.Broadcast(ctx, js, func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}, events.WithDeliverAll(), events.WithLogger(quiet))
		require.NoError(b, err)
		b.Cleanup(func() { _ = l.Close() })
		relaybench.Run(b, relaybench.Config{
			Write: func(ctx context.Context, w, i int) error {
				_, err := env.client.CreateSession(ctx, fmt.Sprintf("w%d", w), fmt.Sprintf("w%d-%d", w, i))
				return err
			},
			StartRelay: func() func() {
				cfg := events.DefaultRelayConfig()
				cfg.Logger = quiet
				r, err := events.NewRelay(env.store, js, cfg)
				require.NoError(b, err)
				require.NoError(b, r.Start(ctx))
				b.Cleanup(func() { _ = r.Close() })
				return func() { _ = r.Close() }
			},
			Events: got,
		})
	}
}
