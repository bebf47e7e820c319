package sessioncache

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

func session(id string, expires time.Time) *bus.Session {
	return &bus.Session{SessionID: id, LoginID: "u", ExpiresAt: expires, Attributes: map[string]string{"k": "v"}}
}

func currentCache(max int) *Cache {
	c := New(max)
	none := func() bool { return false }
	c.pending.Store(&none)
	c.setCurrent(true)
	return c
}

func TestCache_FillAndGet(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	c.Fill(c.Begin("a"), session("a", now.Add(time.Minute)), "tok")
	got, ok := c.Get("a", now)
	require.True(t, ok)
	got.Attributes["k"] = "changed"
	again, _ := c.Get("a", now)
	assert.Equal(t, "v", again.Attributes["k"], "each read gets its own copy")
	byToken, ok := c.GetByToken("tok", now)
	require.True(t, ok)
	assert.Equal(t, "a", byToken.SessionID)
	_, ok = c.GetByToken("other", now)
	assert.False(t, ok)
	v, found, hit := c.GetAttribute("a", "k", now)
	assert.True(t, hit)
	assert.True(t, found)
	assert.Equal(t, "v", v)
}

// A notice that arrives while a read is in flight keeps the read's answer
// out: it may predate the change.
func TestCache_NoticeDuringReadKeepsItOut(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	t1 := c.Begin("a")
	c.Invalidate("a")
	c.Fill(t1, session("a", now.Add(time.Minute)), "")
	_, ok := c.Get("a", now)
	assert.False(t, ok, "by id")

	t2 := c.BeginToken()
	c.Invalidate("b")
	c.Invalidate("a")
	c.Invalidate("c")
	c.Fill(t2, session("a", now.Add(time.Minute)), "tok")
	_, ok = c.GetByToken("tok", now)
	assert.False(t, ok, "by token")

	// Notices of other sessions do not keep a read by token out, unless
	// too many went by to tell.
	t5 := c.BeginToken()
	for i := range 100 {
		c.Invalidate(fmt.Sprintf("other-%d", i))
	}
	c.Fill(t5, session("a", now.Add(time.Minute)), "tok")
	_, ok = c.GetByToken("tok", now)
	assert.True(t, ok, "by token, among notices of others")
	t6 := c.BeginToken()
	for i := range recentNotices {
		c.Invalidate(fmt.Sprintf("other-%d", i))
	}
	c.Fill(t6, session("z", now.Add(time.Minute)), "tok-z")
	_, ok = c.GetByToken("tok-z", now)
	assert.False(t, ok, "past what the cache remembers")

	t3 := c.Begin("a")
	c.Flush()
	c.Fill(t3, session("a", now.Add(time.Minute)), "")
	_, ok = c.Get("a", now)
	assert.False(t, ok, "across a flush")

	t4 := c.Begin("a")
	c.Fill(t4, session("a", now.Add(time.Minute)), "")
	_, ok = c.Get("a", now)
	assert.True(t, ok, "a read with no notice meanwhile is kept")
}

func TestCache_NotCurrentAnswersNothing(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	c.Fill(c.Begin("a"), session("a", now.Add(time.Minute)), "")
	c.setCurrent(false)
	_, ok := c.Get("a", now)
	assert.False(t, ok)
	assert.False(t, c.Begin("a").OK, "no fills while not current")
	c.setCurrent(true)
	_, ok = c.Get("a", now)
	assert.False(t, ok, "what was held before is gone")
	assert.NotZero(t, c.Stats().FallThroughs)
}

func TestCache_NeverPastExpiry(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	c.Fill(c.Begin("a"), session("a", now.Add(time.Second)), "")
	_, ok := c.Get("a", now.Add(999*time.Millisecond))
	assert.True(t, ok)
	_, ok = c.Get("a", now.Add(time.Second))
	assert.False(t, ok)
}

func TestCache_Bounded(t *testing.T) {
	now := time.Now()
	c := currentCache(1000)
	for i := range 10_000 {
		id := fmt.Sprintf("s-%d", i)
		c.Fill(c.Begin(id), session(id, now.Add(time.Minute)), "tok-"+id)
	}
	st := c.Stats()
	assert.LessOrEqual(t, st.Entries, 1000+shards)
	assert.GreaterOrEqual(t, st.Evictions, uint64(10_000-1000-shards))
}

func TestCache_InvalidateTokenAndLogin(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	c.Fill(c.Begin("a"), session("a", now.Add(time.Minute)), "tok")
	c.InvalidateToken("tok")
	_, ok := c.Get("a", now)
	assert.False(t, ok)
	c.Fill(c.Begin("b"), session("b", now.Add(time.Minute)), "")
	c.InvalidateLogin("u")
	_, ok = c.Get("b", now)
	assert.False(t, ok)
}

func TestCache_DueForTouch(t *testing.T) {
	now := time.Now()
	c := currentCache(0)
	c.Fill(c.Begin("a"), session("a", now.Add(time.Minute)), "")
	assert.False(t, c.DueForTouch("a", time.Now(), time.Second), "the filling read touched it")
	later := time.Now().Add(2 * time.Second)
	assert.True(t, c.DueForTouch("a", later, time.Second))
	assert.False(t, c.DueForTouch("a", later, time.Second), "once per interval")
	assert.False(t, c.DueForTouch("missing", later, time.Second))
}
