package sessioncache

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/session-bus/session-bus/bus"
)

// BenchmarkCache_Memory reports the heap a held session costs: 100,000
// sessions with a login, three short attributes and a token, as a login
// sets them up (SEED.md's best practice).
func BenchmarkCache_Memory(b *testing.B) {
	const n = 100_000
	now := time.Now()
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := currentCache(n)
		for i := range n {
			s := &bus.Session{SessionID: uuid.NewString(), LoginID: fmt.Sprintf("user-%d@example.com", i), ServiceID: "login-svc",
				CreateTime: now, LastAccess: now, ExpiresAt: now.Add(time.Hour), Revision: uint64(i + 1),
				Attributes: map[string]string{"role": "admin", "department": "sales", "device": "web"}}
			c.Fill(c.Begin(s.SessionID), s, fmt.Sprintf("token-%040d", i))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		runtime.KeepAlive(c)
	}
}

// BenchmarkCache_Get is a hit, copy included, on 16 goroutines per core.
func BenchmarkCache_Get(b *testing.B) {
	now := time.Now()
	c := currentCache(0)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = uuid.NewString()
		c.Fill(c.Begin(ids[i]), &bus.Session{SessionID: ids[i], ExpiresAt: now.Add(time.Hour),
			Attributes: map[string]string{"role": "admin", "department": "sales", "device": "web"}}, "")
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(ids[i%len(ids)], now); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
