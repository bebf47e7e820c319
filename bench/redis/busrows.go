package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/internal/app"
	"github.com/session-bus/session-bus/kvstore"
)

// readersN is how many cached clients watch each change in a lag row.
const readersN = 4

// initialAttrs are the attributes every session is created with:
// SEED.md's best practice, the role and the like in the create itself.
var initialAttrs = map[string]string{"role": "admin", "device": "web", "tenant": "acme"}

// busBench is one bus started in process as `session-bus serve` starts
// it, and the connections that measure it.
type busBench struct {
	cfg       config
	mode      app.AuthMode
	target    string
	dir       string
	app       *app.App
	conns     []*nats.Conn
	clients   []*client.Client
	serviceID string
	run       string

	ids, tokens, logins []string
}

// busRows starts a bus in auth mode, measures it and its raw KV, and
// stops it.
func busRows(ctx context.Context, cfg config, mode app.AuthMode, progress func(string)) (rows []Row, err error) {
	b := &busBench{cfg: cfg, mode: mode, target: "bus/" + string(mode), run: "bb" + newID()[:8]}
	defer func() { err = errors.Join(err, b.close()) }()
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	c, err := b.newClient(false)
	if err != nil {
		return nil, err
	}
	progress(b.target + ": pool")
	if err := b.fill(ctx, c); err != nil {
		return nil, err
	}
	measure := func(name, key string, k kind, do op) *Row {
		progress(b.target + ": " + name)
		closedLoop(ctx, cfg.Goroutines, cfg.Warmup, do)
		rows = append(rows, rowFrom(b.target, name, key, k, closedLoop(ctx, cfg.Goroutines, cfg.Duration, do)))
		return &rows[len(rows)-1]
	}
	n := uint64(len(b.ids))

	kv, value, err := b.rawBucket(ctx)
	if err != nil {
		return nil, err
	}
	rawKey := func(i uint64) string { return "k" + strconv.FormatUint(i%n, 10) }
	measure("kv.Get (raw JetStream KV)", keyKVGet, kindBase, func(ctx context.Context, i uint64) error {
		_, err := kv.Get(ctx, rawKey(i))
		return err
	}).Note = fmt.Sprintf("%d-byte values", len(value))
	measure("kv.Put (raw JetStream KV)", keyKVPut, kindBase, func(ctx context.Context, i uint64) error {
		_, err := kv.Put(ctx, rawKey(i), value)
		return err
	})

	cached, err := b.newClient(true)
	if err != nil {
		return nil, err
	}
	if err := waitCurrent(cached); err != nil {
		return nil, err
	}
	for _, id := range b.ids { // warm: every session held
		if _, err := cached.GetSession(ctx, id); err != nil {
			return nil, err
		}
	}
	before := cached.CacheStats()
	r := measure("cached get (client.WithCache)", "cached-get", kindCached, func(ctx context.Context, i uint64) error {
		_, err := cached.GetSession(ctx, b.ids[i%n])
		return err
	})
	after := cached.CacheStats()
	if reads := after.Hits + after.Misses + after.FallThroughs - before.Hits - before.Misses - before.FallThroughs; reads > 0 {
		r.Note = fmt.Sprintf("hit ratio %.3f", float64(after.Hits-before.Hits)/float64(reads))
	}
	// One value from the cache, as DoCache's GET returns one value: the
	// like-for-like read (a whole session is a copy the caller owns).
	measure("cached get_attribute (one value)", "cached-get-attribute", kindCached, func(ctx context.Context, i uint64) error {
		_, _, err := cached.GetAttribute(ctx, b.ids[i%n], "role")
		return err
	})
	measure("get (uncached client)", "get", kindRead, func(ctx context.Context, i uint64) error {
		_, err := c.GetSession(ctx, b.ids[i%n])
		return err
	})
	measure("get by token", "get-by-token", kindRead, func(ctx context.Context, i uint64) error {
		_, err := c.GetSessionByToken(ctx, b.tokens[i%n])
		return err
	})
	var created atomic.Uint64
	measure("create (3 attributes)", "create", kindCreate, func(ctx context.Context, _ uint64) error {
		k := created.Add(1)
		login := b.run + "-new-" + strconv.FormatUint(k/uint64(cfg.LoginSessions), 10)
		_, err := c.CreateSession(ctx, login, b.run+"-newtok-"+strconv.FormatUint(k, 10), bus.WithAttributes(initialAttrs))
		return err
	})
	nl := uint64(len(b.logins))
	measure(fmt.Sprintf("list by login (%d sessions)", cfg.LoginSessions), "list", kindList, func(ctx context.Context, i uint64) error {
		ss, err := c.SessionsByLogin(ctx, b.logins[i%nl])
		if err == nil && len(ss) != cfg.LoginSessions {
			err = fmt.Errorf("list: %d sessions, want %d", len(ss), cfg.LoginSessions)
		}
		return err
	})
	progress(b.target + ": revocation")
	lag, err := b.revocation(ctx)
	rows = append(rows, lag)
	return rows, err
}

// start starts the bus in a temporary data dir on a random loopback
// port, as `session-bus bench --embedded` does.
func (b *busBench) start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "session-bus-redis-bench-")
	if err != nil {
		return err
	}
	b.dir = dir
	cfg := app.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Auth = "127.0.0.1:-1", dir, b.mode
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if b.app, err = app.Start(ctx, cfg, log); err != nil {
		return fmt.Errorf("start the bus (auth %s): %w", b.mode, err)
	}
	return nil
}

// connect opens a connection as a service would: with the admin's
// credentials in accounts mode, as service "bench" in none.
func (b *busBench) connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name)}
	b.serviceID = "bench"
	if creds := b.app.AdminCredsPath(); creds != "" {
		credsOpts, id, err := client.CredsFileOptions(creds)
		if err != nil {
			return nil, err
		}
		opts, b.serviceID = append(opts, credsOpts...), id
	}
	nc, err := nats.Connect(b.app.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", b.app.ClientURL(), err)
	}
	b.conns = append(b.conns, nc)
	return nc, nil
}

// newClient returns a client on a connection of its own, shared by every
// goroutine of a row, as a service's goroutines share one.
func (b *busBench) newClient(cache bool) (*client.Client, error) {
	nc, err := b.connect("redis-bench")
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithServiceID(b.serviceID)}
	if cache {
		opts = append(opts, client.WithCache(client.CacheConfig{}))
	}
	c, err := client.New(nc, opts...)
	if err != nil {
		return nil, err
	}
	b.clients = append(b.clients, c)
	return c, nil
}

// fill creates the pool: cfg.Sessions sessions with the initial
// attributes, cfg.LoginSessions to a login, 16 at a time.
func (b *busBench) fill(ctx context.Context, c *client.Client) error {
	n := b.cfg.Sessions
	b.ids, b.tokens = make([]string, n), make([]string, n)
	for i := 0; i < n; i += b.cfg.LoginSessions {
		if i+b.cfg.LoginSessions <= n {
			b.logins = append(b.logins, b.login(i))
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for g := range errs {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				b.tokens[i] = fmt.Sprintf("%s-tok-%d", b.run, i)
				s, err := c.CreateSession(ctx, b.login(i), b.tokens[i], bus.WithAttributes(initialAttrs))
				if err != nil {
					errs[g] = err
					return
				}
				b.ids[i] = s.SessionID
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *busBench) login(i int) string {
	return fmt.Sprintf("%s-l%d", b.run, i/b.cfg.LoginSessions)
}

// rawBucket makes the raw KV baseline on the bus's own server: a bucket
// configured as the sessions bucket, holding cfg.Sessions values the
// size of a session record (the largest of the first 64), written by a
// connection in the bus's account (accounts mode: a user of the bus
// account minted from the keys in the data dir, as `bench --baseline`
// does).
func (b *busBench) rawBucket(ctx context.Context) (jetstream.KeyValue, []byte, error) {
	opts := []nats.Option{nats.Name("redis-bench-baseline")}
	if b.mode == app.AuthAccounts {
		keys, err := auth.BootstrapOperator(b.dir)
		if err != nil {
			return nil, nil, err
		}
		user, err := keys.BusUser()
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, user)
	}
	nc, err := nats.Connect(b.app.ClientURL(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: %w", err)
	}
	b.conns = append(b.conns, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	sessions, err := js.KeyValue(ctx, kvstore.DefaultConfig().Bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: sessions bucket: %w", err)
	}
	size, err := recordSize(ctx, sessions)
	if err != nil {
		return nil, nil, err
	}
	st, err := sessions.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	sc := st.Config()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "redis_bench_raw", History: sc.History,
		Storage: sc.Storage, Replicas: sc.Replicas, LimitMarkerTTL: sc.LimitMarkerTTL, Compression: sc.Compression})
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: create bucket: %w", err)
	}
	value := bytes.Repeat([]byte("v"), size)
	for i := range b.cfg.Sessions {
		if _, err := kv.Put(ctx, "k"+strconv.Itoa(i), value); err != nil {
			return nil, nil, err
		}
	}
	return kv, value, nil
}

// recordSize is the largest value among the first 64 keys of kv: a
// session record, beside the smaller index entries.
func recordSize(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = lister.Stop() }()
	size, n := 0, 0
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		size = max(size, len(e.Value()))
		if n++; n == 64 {
			break
		}
	}
	if size == 0 {
		return 0, errors.New("baseline: no session record found")
	}
	return size, nil
}

// revocation measures how long after a change is acknowledged any of 4
// cached clients (each on its own connection) still serves the old
// state, as the integration package's BenchmarkRevocation does (without
// its background write load): cfg.Revocations rounds of a delete, a
// logout-all and an attribute change, each on a fresh session.
func (b *busBench) revocation(ctx context.Context) (Row, error) {
	row := Row{Target: b.target, Op: "revocation: delete/logout-all/set attribute seen by 4 cached clients", Key: "revocation", Kind: kindLag}
	writer, err := b.newClient(false)
	if err != nil {
		return row, err
	}
	readers := make([]*client.Client, readersN)
	for i := range readers {
		if readers[i], err = b.newClient(true); err != nil {
			return row, err
		}
		if err := waitCurrent(readers[i]); err != nil {
			return row, err
		}
	}
	var all []time.Duration
	gaveUp := 0
	for n := range b.cfg.Revocations {
		for k := range 3 {
			login := fmt.Sprintf("%s-rev-%d-%d", b.run, n, k)
			s, err := writer.CreateSession(ctx, login, login+"-tok", bus.WithAttributes(initialAttrs))
			if err != nil {
				return row, err
			}
			stale := make([]func() bool, readersN)
			for i, c := range readers {
				if err := warmBus(ctx, c, s.SessionID); err != nil {
					return row, err
				}
				stale[i] = func() bool {
					got, err := c.GetSession(ctx, s.SessionID)
					return err == nil && got.Attributes["role"] == "admin"
				}
			}
			lags, gave, err := lagAfterAck(stale, func() error {
				switch k {
				case 0:
					return writer.DeleteSession(ctx, s.SessionID)
				case 1:
					_, err := writer.DeleteAllSessions(ctx, login)
					return err
				default:
					return writer.SetAttribute(ctx, s.SessionID, "role", "user")
				}
			})
			if err != nil {
				return row, err
			}
			all = append(all, lags...)
			gaveUp += gave
		}
	}
	fillLag(&row, all, gaveUp)
	return row, nil
}

// waitCurrent waits until c's cache answers reads.
func waitCurrent(c *client.Client) error {
	deadline := time.Now().Add(10 * time.Second)
	for !c.CacheStats().Current {
		if time.Now().After(deadline) {
			return errors.New("the client's cache never became current")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// warmBus reads id until c answers it from its cache.
func warmBus(ctx context.Context, c *client.Client, id string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		before := c.CacheStats().Hits
		if _, err := c.GetSession(ctx, id); err != nil {
			return err
		}
		if c.CacheStats().Hits > before {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return fmt.Errorf("session %s never cached", id)
}

// close closes the clients and connections, stops the bus and removes its
// data.
func (b *busBench) close() error {
	for _, c := range b.clients {
		c.Close()
	}
	for _, nc := range b.conns {
		nc.Close()
	}
	var errs []error
	if b.app != nil {
		if err := b.app.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop the bus: %w", err))
		}
	}
	if b.dir != "" {
		errs = append(errs, os.RemoveAll(b.dir))
	}
	return errors.Join(errs...)
}
