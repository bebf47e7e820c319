package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
)

// benchEnv is one embedded server with a store, a manager and a raw bucket
// on the same server, so figures compare in the same run.
type benchEnv struct {
	st  *Store
	m   *bus.Manager
	raw jetstream.KeyValue
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	return newBenchEnvOn(b, natstest.JetStream(b, natstest.RunServer(b)), DefaultConfig())
}

// newBenchEnvOn builds a benchEnv with cfg on js; the raw bucket has the
// same storage and replicas.
func newBenchEnvOn(b *testing.B, js jetstream.JetStream, cfg Config) *benchEnv {
	b.Helper()
	ctx := context.Background()
	st, err := New(ctx, js, cfg)
	require.NoError(b, err)
	b.Cleanup(st.Close)
	m, err := bus.New(st, "bench", time.Hour)
	require.NoError(b, err)
	raw, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "raw", History: 1, Storage: cfg.Storage, Replicas: cfg.Replicas})
	require.NoError(b, err)
	return &benchEnv{st: st, m: m, raw: raw}
}

// runN runs op b.N times over g goroutines and reports ops/s and p99.
func runN(b *testing.B, g int, op func(i int) error) {
	b.Helper()
	lat := make([][]time.Duration, g)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(all[len(all)*99/100].Seconds()*1e3, "p99-ms")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

// BenchmarkStore compares bus operations on the KV store with raw kv.Put
// and kv.Get on the same server, at 1 and 16 goroutines.
func BenchmarkStore(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	// The raw value is a stored session record, so both sides move the same bytes.
	value := []byte(`{"session_id":"40321b7d-4cf5-46d1-b89d-f01609a8ea13","login_id":"user-1","service_id":"bench",` +
		`"create_time":"2026-11-27T19:38:05.670889431Z","last_access":"2026-11-27T19:38:05.670889431Z",` +
		`"expires_at":"2026-11-27T20:38:05.670889431Z","attributes":{"role":"admin"},"revision":0,` +
		`"token_fingerprint":"3d6cb1ab5aa9e075eeb3a608a885b15452f8f9c50a7d33aef07acfd8fdfdc6e1"}`)
	require.NoError(b, func() error { _, err := env.raw.Put(ctx, "k.0", value); return err }())
	// A pool of sessions to read and annotate.
	const pool = 256
	ids := make([]string, pool)
	for i := range ids {
		s, err := env.m.CreateSession(ctx, fmt.Sprintf("user-%d", i), fmt.Sprintf("pool-token-%d", i))
		require.NoError(b, err)
		require.NoError(b, env.m.SetAttribute(ctx, s.SessionID, "role", "admin"))
		ids[i] = s.SessionID
	}
	var seq atomic.Int64
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("op=raw-put/g=%d", g), func(b *testing.B) {
			runN(b, g, func(i int) error {
				_, err := env.raw.Put(ctx, fmt.Sprintf("k.%d", i%pool), value)
				return err
			})
		})
		b.Run(fmt.Sprintf("op=raw-2put/g=%d", g), func(b *testing.B) {
			runN(b, g, rawTwoPuts(env, value))
		})
		b.Run(fmt.Sprintf("op=raw-get/g=%d", g), func(b *testing.B) {
			runN(b, g, func(int) error { _, err := env.raw.Get(ctx, "k.0"); return err })
		})
		b.Run(fmt.Sprintf("op=create/g=%d", g), func(b *testing.B) {
			runN(b, g, func(int) error {
				n := seq.Add(1)
				_, err := env.m.CreateSession(ctx, fmt.Sprintf("bench-%d", n%1000), fmt.Sprintf("bench-token-%d", n))
				return err
			})
		})
		b.Run(fmt.Sprintf("op=get/g=%d", g), func(b *testing.B) {
			runN(b, g, func(i int) error { _, err := env.m.GetSession(ctx, ids[i%pool]); return err })
		})
		b.Run(fmt.Sprintf("op=get-by-token/g=%d", g), func(b *testing.B) {
			runN(b, g, func(i int) error {
				_, err := env.m.GetSessionByToken(ctx, fmt.Sprintf("pool-token-%d", i%pool))
				return err
			})
		})
		b.Run(fmt.Sprintf("op=set-attribute/g=%d", g), func(b *testing.B) {
			runN(b, g, func(i int) error { return env.m.SetAttribute(ctx, ids[i%pool], "n", fmt.Sprint(i)) })
		})
		b.Run(fmt.Sprintf("op=list-by-login/g=%d", g), func(b *testing.B) {
			runN(b, g, func(i int) error {
				_, err := env.m.SessionsByLogin(ctx, fmt.Sprintf("user-%d", i%pool))
				return err
			})
		})
	}
}

// rawTwoPuts is two sequential raw kv.Puts of value: the round trips of a
// create in two steps.
func rawTwoPuts(env *benchEnv, value []byte) func(i int) error {
	return func(i int) error {
		for _, k := range []string{"k.%d", "j.%d"} {
			if _, err := env.raw.Put(context.Background(), fmt.Sprintf(k, i%256), value); err != nil {
				return err
			}
		}
		return nil
	}
}

// BenchmarkCreate compares creates in two steps with creates as one
// atomic batch where the store makes them (memory buckets, replicated
// buckets), beside two sequential raw kv.Puts on the same server. Creates
// of a file bucket of one replica always take two steps.
func BenchmarkCreate(b *testing.B) {
	value := make([]byte, 400)
	envs := []struct {
		name string
		env  func(b *testing.B) *benchEnv
	}{
		{"file-R1", func(b *testing.B) *benchEnv { return newBenchEnv(b) }},
		{"memory-R1", func(b *testing.B) *benchEnv {
			cfg := DefaultConfig()
			cfg.Storage = jetstream.MemoryStorage
			return newBenchEnvOn(b, natstest.JetStream(b, natstest.RunServer(b)), cfg)
		}},
		{"file-R3", func(b *testing.B) *benchEnv {
			cfg := DefaultConfig()
			cfg.Replicas = 3
			return newBenchEnvOn(b, natstest.JetStream(b, natstest.RunCluster(b, 3)[0]), cfg)
		}},
	}
	var seq atomic.Int64
	for _, e := range envs {
		b.Run("bucket="+e.name, func(b *testing.B) {
			env := e.env(b)
			atomicCreate := env.st.atomicCreate.Load()
			for _, g := range []int{1, 16} {
				b.Run(fmt.Sprintf("op=raw-2put/g=%d", g), func(b *testing.B) { runN(b, g, rawTwoPuts(env, value)) })
				for _, batch := range []bool{false, true} {
					if batch && !atomicCreate {
						continue
					}
					name := map[bool]string{false: "create-steps", true: "create-batch"}[batch]
					b.Run(fmt.Sprintf("op=%s/g=%d", name, g), func(b *testing.B) {
						env.st.atomicCreate.Store(batch)
						b.Cleanup(func() { env.st.atomicCreate.Store(atomicCreate) })
						runN(b, g, func(int) error {
							n := seq.Add(1)
							_, err := env.m.CreateSession(context.Background(), fmt.Sprintf("bench-%d", n%1000), fmt.Sprintf("bench-token-%d", n))
							return err
						})
					})
				}
			}
		})
	}
}

// BenchmarkListByLogin lists a login's 5 sessions in an almost empty bucket
// and in one holding 100,000 sessions of other logins, at 1 and 16
// goroutines, beside raw kv.Get on the same server: the login's ids
// (SessionIDsByLogin), the ids and then their sessions read one by one,
// eight at a time, or in one batched read (GetSessions), and the manager's
// SessionsByLogin.
func BenchmarkListByLogin(b *testing.B) {
	for _, others := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			env := newBenchEnv(b)
			ctx := context.Background()
			fill(b, env.st, others)
			for i := range 5 {
				_, err := env.m.CreateSession(ctx, "target", fmt.Sprintf("target-%d", i))
				require.NoError(b, err)
			}
			_, err := env.raw.Put(ctx, "k.0", make([]byte, 400))
			require.NoError(b, err)
			want := func(n int, err error) error {
				if err == nil && n != 5 {
					err = fmt.Errorf("listed %d sessions, want 5", n)
				}
				return err
			}
			ops := []struct {
				name string
				op   func() error
			}{
				{"raw-get", func() error { _, err := env.raw.Get(ctx, "k.0"); return err }},
				{"ids", func() error {
					ids, err := env.st.SessionIDsByLogin(ctx, "target")
					return want(len(ids), err)
				}},
				{"ids+get-each", func() error {
					ids, err := env.st.SessionIDsByLogin(ctx, "target")
					if err != nil {
						return err
					}
					found := make(map[string]*bus.Session, len(ids))
					err = env.st.getEach(ctx, ids, found)
					return want(len(found), err)
				}},
				{"ids+get-sessions", func() error {
					ids, err := env.st.SessionIDsByLogin(ctx, "target")
					if err != nil {
						return err
					}
					list, err := env.st.GetSessions(ctx, ids)
					return want(len(list), err)
				}},
				{"list", func() error {
					list, err := env.m.SessionsByLogin(ctx, "target")
					return want(len(list), err)
				}},
			}
			for _, g := range []int{1, 16} {
				for _, o := range ops {
					b.Run(fmt.Sprintf("op=%s/g=%d", o.name, g), func(b *testing.B) {
						runN(b, g, func(int) error { return o.op() })
					})
				}
			}
		})
	}
}

// fill writes n sessions of distinct logins with async publishes.
func fill(b *testing.B, st *Store, n int) {
	b.Helper()
	now := time.Now()
	for i := range n {
		s := &bus.Session{SessionID: uuid.NewString(), LoginID: fmt.Sprintf("other-%d", i), ServiceID: "bench",
			CreateTime: now, LastAccess: now, ExpiresAt: now.Add(time.Hour), TokenFingerprint: fmt.Sprintf("fp%d", i)}
		data, err := encodeSession(s)
		require.NoError(b, err)
		for _, w := range []write{
			{key: sessionKey(s.SessionID), data: data, ttl: time.Hour},
			{key: loginKey(s.LoginID, s.SessionID), ttl: time.Hour},
			{key: tokenKey(s.TokenFingerprint), data: []byte(s.SessionID), ttl: time.Hour},
		} {
			_, err := st.js.PublishMsgAsync(st.msg(w))
			require.NoError(b, err)
		}
	}
	select {
	case <-st.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("fill did not complete")
	}
}

// BenchmarkHotSession: 32 writers set distinct attributes on one session
// (compare-and-set under contention), beside 32 writers doing a raw
// read-modify-write (kv.Get + kv.Update with retry) on one raw key.
func BenchmarkHotSession(b *testing.B) {
	const writers = 32
	env := newBenchEnv(b)
	ctx := context.Background()
	s, err := env.m.CreateSession(ctx, "hot", "hot-token")
	require.NoError(b, err)
	_, err = env.raw.Put(ctx, "hot", []byte("{}"))
	require.NoError(b, err)
	b.Run("op=kv_cas", func(b *testing.B) {
		runN(b, writers, func(i int) error {
			for {
				e, err := env.raw.Get(ctx, "hot")
				if err != nil {
					return err
				}
				if _, err = env.raw.Update(ctx, "hot", []byte(fmt.Sprint(i)), e.Revision()); err == nil {
					return nil
				}
				if !errors.Is(err, jetstream.ErrKeyExists) {
					return err
				}
			}
		})
	})
	b.Run("op=set_attribute", func(b *testing.B) {
		runN(b, writers, func(i int) error {
			return env.m.SetAttribute(ctx, s.SessionID, fmt.Sprintf("k%d", i%200), fmt.Sprint(i))
		})
	})
}
