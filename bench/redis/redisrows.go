package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/session-bus/session-bus/bus"
)

// redisTTL is the sessions' TTL in Redis: the bus's default idle timeout.
const redisTTL = 30 * time.Minute

// docacheTTL is the client-side TTL of rueidis's cached reads.
const docacheTTL = time.Minute

// redisBench measures Redis beside the bus: a session is a JSON value
// under session:<id> (SETEX) and a login's sessions a set login:<login>
// (SADD), as sa-token's Redis DAO keeps them.
type redisBench struct {
	cfg    config
	rdb    *goredis.Client
	run    string // prefix of this run's keys
	ids    []string
	logins []string
	value  []byte
}

// newID returns a random UUID-shaped id, like the bus's session ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// sessionValue is what the bus returns for a session with the 3 initial
// attributes of the bench, as JSON: the Redis value is the same.
func sessionValue(id, login string) []byte {
	now := time.Now().UTC()
	b, _ := json.Marshal(bus.Session{SessionID: id, LoginID: login, ServiceID: "bench", CreateTime: now,
		LastAccess: now, ExpiresAt: now.Add(redisTTL), Attributes: initialAttrs, Revision: 1})
	return b
}

func (rb *redisBench) sessionKey(id string) string { return "session:" + id }
func (rb *redisBench) loginKey(l string) string    { return "login:" + l }

// redisRows measures the Redis rows. The Redis at cfg.RedisAddr should be
// one of its own (run.sh starts one); the run's keys carry a random
// prefix and expire.
func redisRows(ctx context.Context, cfg config, progress func(string)) (rows []Row, version string, err error) {
	rb := &redisBench{cfg: cfg, run: "rb" + newID()[:8]}
	rb.rdb = goredis.NewClient(&goredis.Options{Addr: cfg.RedisAddr, PoolSize: 2 * cfg.Goroutines})
	defer func() { err = errors.Join(err, rb.rdb.Close()) }()
	info, err := rb.rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil, "", fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			version = v
		}
	}
	if err := rb.fill(ctx); err != nil {
		return nil, version, err
	}
	measure := func(name, key string, k kind, do op) Row {
		progress("redis: " + name)
		closedLoop(ctx, cfg.Goroutines, cfg.Warmup, do)
		row := rowFrom("redis", name, key, k, closedLoop(ctx, cfg.Goroutines, cfg.Duration, do))
		rows = append(rows, row)
		return row
	}
	n := uint64(len(rb.ids))
	measure("GET (go-redis)", keyRedisGet, kindBase, func(ctx context.Context, i uint64) error {
		return rb.rdb.Get(ctx, rb.sessionKey(rb.ids[i%n])).Err()
	})
	var created atomic.Uint64
	measure("create: SETEX+SADD pipelined (go-redis)", keyRedisCreate, kindBase, func(ctx context.Context, i uint64) error {
		c := created.Add(1)
		id, login := newID(), rb.run+"-new-"+strconv.FormatUint(c/uint64(cfg.LoginSessions), 10)
		pipe := rb.rdb.Pipeline()
		pipe.SetEx(ctx, rb.sessionKey(id), sessionValue(id, login), redisTTL)
		pipe.SAdd(ctx, rb.loginKey(login), id)
		_, err := pipe.Exec(ctx)
		return err
	})
	nl := uint64(len(rb.logins))
	measure("list: SMEMBERS+MGET (go-redis)", keyRedisList, kindBase, func(ctx context.Context, i uint64) error {
		ids, err := rb.rdb.SMembers(ctx, rb.loginKey(rb.logins[i%nl])).Result()
		if err != nil {
			return err
		}
		keys := make([]string, len(ids))
		for j, id := range ids {
			keys[j] = rb.sessionKey(id)
		}
		vals, err := rb.rdb.MGet(ctx, keys...).Result()
		if err == nil && len(vals) != cfg.LoginSessions {
			err = fmt.Errorf("list: %d sessions, want %d", len(vals), cfg.LoginSessions)
		}
		return err
	})

	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{cfg.RedisAddr}})
	if err != nil {
		return rows, version, fmt.Errorf("rueidis: %w", err)
	}
	defer rc.Close()
	measure("GET (rueidis, no cache)", "rueidis-get", kindBase, func(ctx context.Context, i uint64) error {
		return rc.Do(ctx, rc.B().Get().Key(rb.sessionKey(rb.ids[i%n])).Build()).Error()
	})
	for _, id := range rb.ids { // warm: every key held
		if err := rc.DoCache(ctx, rc.B().Get().Key(rb.sessionKey(id)).Cache(), docacheTTL).Error(); err != nil {
			return rows, version, fmt.Errorf("rueidis: warm: %w", err)
		}
	}
	var hits, reads atomic.Uint64
	measure("GET, DoCache 1m TTL (rueidis)", keyDoCache, kindBase, func(ctx context.Context, i uint64) error {
		res := rc.DoCache(ctx, rc.B().Get().Key(rb.sessionKey(rb.ids[i%n])).Cache(), docacheTTL)
		reads.Add(1)
		if res.IsCacheHit() {
			hits.Add(1)
		}
		return res.Error()
	})
	rows[len(rows)-1].Note = fmt.Sprintf("hit ratio %.3f", float64(hits.Load())/float64(max(reads.Load(), 1)))

	progress("redis: invalidation")
	lag, err := rb.invalidation(ctx)
	rows = append(rows, lag)
	return rows, version, err
}

// fill writes the pool: cfg.Sessions sessions, cfg.LoginSessions to a login.
func (rb *redisBench) fill(ctx context.Context) error {
	rb.ids = make([]string, rb.cfg.Sessions)
	pipe := rb.rdb.Pipeline()
	for i := range rb.ids {
		id := newID()
		login := fmt.Sprintf("%s-l%d", rb.run, i/rb.cfg.LoginSessions)
		if i%rb.cfg.LoginSessions == 0 {
			rb.logins = append(rb.logins, login)
		}
		rb.ids[i] = id
		pipe.SetEx(ctx, rb.sessionKey(id), sessionValue(id, login), redisTTL)
		pipe.SAdd(ctx, rb.loginKey(login), id)
		pipe.Expire(ctx, rb.loginKey(login), redisTTL)
	}
	_, err := pipe.Exec(ctx)
	if n := len(rb.ids) % rb.cfg.LoginSessions; n != 0 {
		rb.logins = rb.logins[:len(rb.logins)-1] // the last login is short: lists skip it
	}
	return err
}

// invalidation measures rueidis's server-assisted client-side caching by
// BenchmarkRevocation's method: 4 rueidis clients, each on its own
// connection with its own cache, read a key with DoCache while a writer
// (go-redis) SETs it a new value; cfg.Revocations*3 changes (as many as
// the bus's three kinds).
func (rb *redisBench) invalidation(ctx context.Context) (Row, error) {
	row := Row{Target: "redis", Op: "invalidation: SET seen by 4 DoCache readers (rueidis)", Key: "rueidis-invalidation", Kind: kindLag}
	readers := make([]rueidis.Client, readersN)
	for i := range readers {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{rb.cfg.RedisAddr}})
		if err != nil {
			return row, fmt.Errorf("rueidis: %w", err)
		}
		defer c.Close()
		readers[i] = c
	}
	var all []time.Duration
	gaveUp := 0
	for n := range rb.cfg.Revocations * 3 {
		key := fmt.Sprintf("%s-inv-%d", rb.run, n)
		if err := rb.rdb.Set(ctx, key, "old", time.Minute).Err(); err != nil {
			return row, err
		}
		stale := make([]func() bool, readersN)
		for i, c := range readers {
			if err := warmRueidis(ctx, c, key); err != nil {
				return row, err
			}
			stale[i] = func() bool {
				v, err := c.DoCache(ctx, c.B().Get().Key(key).Cache(), docacheTTL).ToString()
				return err == nil && v == "old"
			}
		}
		lags, gave, err := lagAfterAck(stale, func() error { return rb.rdb.Set(ctx, key, "new", time.Minute).Err() })
		if err != nil {
			return row, err
		}
		all = append(all, lags...)
		gaveUp += gave
	}
	fillLag(&row, all, gaveUp)
	return row, nil
}

// warmRueidis reads key until c answers it from its cache.
func warmRueidis(ctx context.Context, c rueidis.Client, key string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		res := c.DoCache(ctx, c.B().Get().Key(key).Cache(), docacheTTL)
		if err := res.Error(); err != nil {
			return err
		}
		if res.IsCacheHit() {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return fmt.Errorf("rueidis: %s never cached", key)
}

// fillLag sets a lag row's figures.
func fillLag(row *Row, lags []time.Duration, gaveUp int) {
	h := lagHistogram(lags)
	row.Ops = h.Count()
	row.P50us, row.P99us, row.MaxUs = us(h.Quantile(0.5)), us(h.Quantile(0.99)), us(h.Max())
	stale := 0
	for _, d := range lags {
		if d > 0 {
			stale++
		}
	}
	row.Note = fmt.Sprintf("%d samples, %d stale after ack", len(lags), stale)
	if gaveUp > 0 {
		row.Errors = uint64(gaveUp)
		row.Error = fmt.Sprintf("still stale after %v", staleGiveUp)
	}
}
