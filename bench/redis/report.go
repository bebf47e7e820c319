package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// kind says what a row measures and so what it is compared with.
type kind string

const (
	kindRead   kind = "read"   // a read of one session: vs Redis GET and kv.Get
	kindCached kind = "cached" // a read from a client-side cache: also vs rueidis DoCache
	kindList   kind = "list"   // the sessions of a login: vs Redis GET, kv.Get and SMEMBERS+MGET
	kindCreate kind = "create" // a new session: vs Redis SETEX+SADD and kv.Put
	kindLag    kind = "lag"    // staleness after an acknowledged change: p50/p99/max are lags
	kindBase   kind = "base"   // a baseline
)

// Row keys of the baselines.
const (
	keyRedisGet    = "redis-get"
	keyRedisCreate = "redis-create"
	keyRedisList   = "redis-list"
	keyDoCache     = "rueidis-docache"
	keyKVGet       = "kv-get"
	keyKVPut       = "kv-put"
)

// Row is one line of the report.
type Row struct {
	// Target is "redis", or "bus/accounts" or "bus/none": the bus in that
	// auth mode, with its raw KV baseline.
	Target string `json:"target"`
	Op     string `json:"op"`
	Key    string `json:"key"`
	Kind   kind   `json:"kind"`
	// Ops are successful calls (for a lag row: samples, one per reader
	// and change), in Seconds; Errors failed calls.
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	Seconds   float64 `json:"seconds,omitempty"`
	OpsPerSec float64 `json:"ops_per_sec,omitempty"`
	// P50, P99 and Max of the calls' latency, or of the lag (kind lag), in µs.
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
	// AllocsPerOp and BytesPerOp are the whole process's allocations
	// during the row over its calls: for the bus rows the client, the bus
	// and the NATS server (all in this process), for the Redis rows the
	// client only.
	AllocsPerOp float64 `json:"allocs_per_op,omitempty"`
	BytesPerOp  float64 `json:"bytes_per_op,omitempty"`
	// Ratios are ops/s over the named baseline's ops/s in the same run.
	Ratios []Ratio `json:"ratios,omitempty"`
	Note   string  `json:"note,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// Ratio is a row's throughput over a baseline's.
type Ratio struct {
	Against string  `json:"against"`
	X       float64 `json:"x"`
}

// Report is the whole run.
type Report struct {
	Date         string `json:"date"`
	GoVersion    string `json:"go_version"`
	OS           string `json:"os"`
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model,omitempty"`
	RedisVersion string `json:"redis_version,omitempty"`
	Goroutines   int    `json:"goroutines"`
	Duration     string `json:"duration"`
	Sessions     int    `json:"sessions"`
	Revocations  int    `json:"revocations"`
	// LoadBefore and LoadAfter are the machine's load averages (1, 5,
	// 15 minutes) when the run began and ended: other work on the cores.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
	Rows       []Row  `json:"rows"`
}

func rowFrom(target, opName, key string, k kind, r result) Row {
	row := Row{Target: target, Op: opName, Key: key, Kind: k, Ops: r.ops, Errors: r.errors,
		Seconds: r.elapsed.Seconds(), P50us: us(r.hist.Quantile(0.5)), P99us: us(r.hist.Quantile(0.99)), MaxUs: us(r.hist.Max())}
	if r.elapsed > 0 {
		row.OpsPerSec = float64(r.ops) / r.elapsed.Seconds()
	}
	if calls := r.ops + r.errors; calls > 0 {
		row.AllocsPerOp = float64(r.mallocs) / float64(calls)
		row.BytesPerOp = float64(r.bytes) / float64(calls)
	}
	if r.firstErr != nil {
		row.Error = r.firstErr.Error()
	}
	return row
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// addRatios compares each bus row with the baselines of the same run:
// Redis's, and its own target's raw KV.
func (rep *Report) addRatios() {
	find := func(target, key string) float64 {
		for _, r := range rep.Rows {
			if r.Target == target && r.Key == key && r.Errors == 0 {
				return r.OpsPerSec
			}
		}
		return 0
	}
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Target == "redis" || r.OpsPerSec == 0 {
			continue
		}
		var against []string
		switch r.Kind {
		case kindRead, kindCached, kindList:
			against = []string{keyRedisGet, keyKVGet}
			if r.Kind == kindCached {
				against = append(against, keyDoCache)
			}
			if r.Kind == kindList {
				against = append(against, keyRedisList)
			}
		case kindCreate:
			against = []string{keyRedisCreate, keyKVPut}
		}
		r.Ratios = nil
		for _, key := range against {
			target := "redis"
			if key == keyKVGet || key == keyKVPut {
				target = r.Target
			}
			if base := find(target, key); base > 0 {
				r.Ratios = append(r.Ratios, Ratio{Against: key, X: r.OpsPerSec / base})
			}
		}
	}
}

func (rep *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the report as one aligned table and its legend.
func (rep *Report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "session-bus vs Redis, read path: %s, %s, %d CPUs (%s); %d goroutines, %s a row, loopback",
		rep.Date, rep.GoVersion, rep.CPUs, rep.CPUModel, rep.Goroutines, rep.Duration)
	if rep.RedisVersion != "" {
		fmt.Fprintf(w, "; redis %s (AOF everysec)", rep.RedisVersion)
	}
	if rep.LoadBefore != "" {
		fmt.Fprintf(w, "; load average %s before, %s after", rep.LoadBefore, rep.LoadAfter)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\top\tops/s\tp50\tp99\tmax\tallocs/op\tvs Redis\tvs kv\tvs DoCache\tnote\t")
	for _, r := range rep.Rows {
		rate := "-"
		if r.Kind != kindLag {
			rate = fmt.Sprintf("%.0f", r.OpsPerSec)
		}
		allocs := "-"
		if r.AllocsPerOp > 0 && r.Kind != kindLag {
			allocs = fmt.Sprintf("%.0f", r.AllocsPerOp)
		}
		cells := map[string]string{}
		for _, x := range r.Ratios {
			col := "vs Redis"
			switch x.Against {
			case keyKVGet, keyKVPut:
				col = "vs kv"
			case keyDoCache:
				col = "vs DoCache"
			}
			s := fmt.Sprintf("%.2fx", x.X)
			if x.Against == keyRedisList {
				s = "(list " + s + ")"
			}
			cells[col] = strings.TrimPrefix(cells[col]+" "+s, " ")
		}
		note := r.Note
		if r.Errors > 0 {
			note = strings.TrimPrefix(fmt.Sprintf("%s; %d errors: %s", note, r.Errors, r.Error), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Target, r.Op, rate,
			fmtUs(r.P50us), fmtUs(r.P99us), fmtUs(r.MaxUs), allocs,
			dash(cells["vs Redis"]), dash(cells["vs kv"]), dash(cells["vs DoCache"]), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, legend)
	return err
}

const legend = `ratios: ops/s over the baseline's in this run: reads vs Redis GET (go-redis) and vs kv.Get on the
bus's own server, list also vs SMEMBERS+MGET ("list"), cached get also vs rueidis DoCache, create vs
pipelined SETEX+SADD and vs kv.Put. Lag rows: p50/p99/max of (start of the last read that still saw
the old state - the change's ack), over 4 cached readers x every change. allocs/op: the whole
process (bus rows: client + bus + NATS server; Redis rows: the client only).
`

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtUs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2fµs", v)
	case v < 1000:
		return fmt.Sprintf("%.0fµs", v)
	default:
		return fmt.Sprintf("%.2fms", v/1000)
	}
}
