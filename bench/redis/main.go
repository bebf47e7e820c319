// Command redis-bench measures the read path of session-bus beside Redis,
// in one run on one machine: Redis GET, create (pipelined SETEX+SADD)
// and list (SMEMBERS+MGET) through go-redis, rueidis's server-assisted
// client-side caching (DoCache) and its invalidation latency; then the
// bus, started in process as `session-bus serve` starts it (auth
// accounts, then none), with raw JetStream kv.Get/kv.Put on its own
// server as its baseline: cached get, uncached get, get by token,
// create, list by login, and revocation latency. It prints one table
// (or --json). run.sh starts a Redis of its own and runs it; without
// --redis-addr (or REDIS_ADDR) the Redis rows are left out. See
// README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/session-bus/session-bus/internal/app"
)

// config is a run's settings; defaultConfig states the defaults.
type config struct {
	// RedisAddr of the Redis to measure; empty leaves the Redis rows out.
	RedisAddr string
	// Goroutines of each closed-loop row. Default 16.
	Goroutines int
	// Duration of each closed-loop row, after Warmup. Default 5s and 500ms.
	Duration, Warmup time.Duration
	// Sessions in the read pool, LoginSessions to a login (what list
	// returns). Default 1,000 and 5.
	Sessions, LoginSessions int
	// Revocations: rounds of changes in a lag row (the bus: a delete, a
	// logout-all and an attribute change each; Redis: three SETs). Default 100.
	Revocations int
	// Auth modes of the bus, in order. Default accounts, none.
	Auth []app.AuthMode
}

func defaultConfig() config {
	return config{Goroutines: 16, Duration: 5 * time.Second, Warmup: 500 * time.Millisecond,
		Sessions: 1000, LoginSessions: 5, Revocations: 100, Auth: []app.AuthMode{app.AuthAccounts, app.AuthNone}}
}

func main() {
	cfg := defaultConfig()
	var authModes string
	var asJSON, quiet bool
	var jsonOut string
	flag.StringVar(&cfg.RedisAddr, "redis-addr", os.Getenv("REDIS_ADDR"), "Redis to measure (host:port); empty leaves the Redis rows out")
	flag.IntVar(&cfg.Goroutines, "goroutines", cfg.Goroutines, "goroutines of each row")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each row is measured")
	flag.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured load before each row")
	flag.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "sessions in the read pool")
	flag.IntVar(&cfg.LoginSessions, "login-sessions", cfg.LoginSessions, "sessions to a login: what list returns")
	flag.IntVar(&cfg.Revocations, "revocations", cfg.Revocations, "rounds of changes in the lag rows (3 changes a round)")
	flag.StringVar(&authModes, "auth", "accounts,none", "auth modes of the bus, in order")
	flag.BoolVar(&asJSON, "json", false, "print JSON instead of the table")
	flag.StringVar(&jsonOut, "json-out", "", "also write the JSON report to this file")
	flag.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	flag.Parse()
	cfg.Auth = nil
	for m := range strings.SplitSeq(authModes, ",") {
		cfg.Auth = append(cfg.Auth, app.AuthMode(strings.TrimSpace(m)))
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "redis-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	progress := func(s string) { fmt.Fprintln(os.Stderr, "redis-bench:", s) }
	if quiet {
		progress = func(string) {}
	}
	rep, err := run(ctx, cfg, progress)
	if rep != nil {
		var perr error
		if asJSON {
			perr = rep.writeJSON(os.Stdout)
		} else {
			perr = rep.writeTable(os.Stdout)
		}
		err = errors.Join(err, perr)
		if jsonOut != "" {
			err = errors.Join(err, writeJSONFile(jsonOut, rep))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis-bench:", err)
		os.Exit(1)
	}
}

func (c config) validate() error {
	switch {
	case c.Goroutines < 1, c.Sessions < 1, c.LoginSessions < 1, c.Revocations < 1:
		return errors.New("goroutines, sessions, login-sessions and revocations must be at least 1")
	case c.Sessions < c.LoginSessions:
		return errors.New("sessions must be at least login-sessions")
	case c.Duration <= 0 || c.Warmup < 0:
		return errors.New("duration must be positive, warmup not negative")
	}
	for _, m := range c.Auth {
		if m != app.AuthAccounts && m != app.AuthNone {
			return fmt.Errorf("auth %q: want accounts or none", m)
		}
	}
	return nil
}

// run measures every row: Redis's first (when cfg.RedisAddr is set),
// then each bus in turn, each stopped before the next starts. It returns
// the rows measured so far with an error.
func run(ctx context.Context, cfg config, progress func(string)) (*Report, error) {
	rep := &Report{Date: time.Now().UTC().Format(time.DateOnly), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
		Goroutines: cfg.Goroutines, Duration: cfg.Duration.String(), Sessions: cfg.Sessions, Revocations: cfg.Revocations}
	rep.LoadBefore = loadAvg()
	defer func() {
		rep.LoadAfter = loadAvg()
		rep.addRatios()
	}()
	if cfg.RedisAddr != "" {
		rows, version, err := redisRows(ctx, cfg, progress)
		rep.Rows, rep.RedisVersion = append(rep.Rows, rows...), version
		if err != nil {
			return rep, fmt.Errorf("redis: %w", err)
		}
	}
	for _, mode := range cfg.Auth {
		rows, err := busRows(ctx, cfg, mode, progress)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, fmt.Errorf("bus (auth %s): %w", mode, err)
		}
	}
	return rep, nil
}

func writeJSONFile(path string, rep *Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(rep.writeJSON(f), f.Close())
}

// loadAvg is the first three fields of /proc/loadavg, "" elsewhere.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo, "" elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	return modelName(f)
}

func modelName(r io.Reader) string {
	s := bufio.NewScanner(r)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
