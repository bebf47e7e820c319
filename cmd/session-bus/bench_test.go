package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/internal/app"
	"github.com/session-bus/session-bus/internal/loadgen"
)

// benchRow is a row of bench's table.
type benchRow struct {
	op          string
	ops, errors uint64
	vs          string
}

// parseBenchTable reads the rows of bench's table from its stdout.
func parseBenchTable(tb testing.TB, stdout string) []benchRow {
	tb.Helper()
	lines := strings.Split(stdout, "\n")
	require.Regexp(tb, `^OP +OPS +OPS/S +P50 ms +P90 ms +P99 ms +P99.9 ms +ERRORS +VS RAW KV$`, lines[0])
	var rows []benchRow
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 9 || len(line) != len(lines[0]) {
			break // the notes after the table
		}
		ops, err := strconv.ParseUint(f[1], 10, 64)
		require.NoError(tb, err, line)
		errs, err := strconv.ParseUint(f[7], 10, 64)
		require.NoError(tb, err, line)
		rows = append(rows, benchRow{op: f[0], ops: ops, errors: errs, vs: strings.Join(f[8:], " ")})
	}
	return rows
}

// TestBench_EmbeddedEveryOp: every operation against a bus bench starts
// itself: a row each, in order, each with calls and no errors.
func TestBench_EmbeddedEveryOp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	got := runCLI(t, nil, "bench", "--embedded", "-n", "200", "-c", "8", "--sessions", "100")
	require.Equal(t, 0, got.code, got.stderr)
	rows := parseBenchTable(t, got.stdout)
	require.Len(t, rows, len(loadgen.OpNames()), got.stdout)
	for i, r := range rows {
		assert.Equal(t, loadgen.OpNames()[i], r.op)
		assert.Equal(t, uint64(200), r.ops, r.op)
		assert.Zero(t, r.errors, "%s:\n%s", r.op, got.stdout)
		assert.Equal(t, "-", r.vs)
	}
	assert.Contains(t, got.stderr, "bench: embedded bus (auth accounts)")
	assert.Contains(t, got.stderr, "list: 200 ops", "a progress line per phase")
}

// benchJSON is the JSON document bench --json prints, as docs/BENCH.md
// documents it.
type benchJSON struct {
	Target          string  `json:"target"`
	Auth            string  `json:"auth"`
	Clients         int     `json:"clients"`
	Count           int     `json:"count"`
	DurationSeconds float64 `json:"duration_seconds"`
	Rate            float64 `json:"rate"`
	Sessions        int     `json:"sessions"`
	LoginSessions   int     `json:"login_sessions"`
	OtherSessions   int     `json:"other_sessions"`
	Baseline        *struct {
		Bucket     string         `json:"bucket"`
		Keys       int            `json:"keys"`
		ValueBytes int            `json:"value_bytes"`
		Rows       []benchJSONRow `json:"rows"`
	} `json:"baseline"`
	Phases []struct {
		Name           string         `json:"name"`
		ElapsedSeconds float64        `json:"elapsed_seconds"`
		Rows           []benchJSONRow `json:"rows"`
		Total          *benchJSONRow  `json:"total"`
		Missed         uint64         `json:"missed"`
		EndedEarly     string         `json:"ended_early"`
	} `json:"phases"`
}

type benchJSONRow struct {
	Op           string   `json:"op"`
	Ops          uint64   `json:"ops"`
	Errors       uint64   `json:"errors"`
	OpsPerSec    float64  `json:"ops_per_sec"`
	P50          float64  `json:"p50_ms"`
	P90          float64  `json:"p90_ms"`
	P99          float64  `json:"p99_ms"`
	P999         float64  `json:"p999_ms"`
	Max          float64  `json:"max_ms"`
	Mean         float64  `json:"mean_ms"`
	Baseline     string   `json:"baseline"`
	Ratio        float64  `json:"ratio"`
	ErrorSamples []string `json:"error_samples"`
}

func decodeBenchJSON(tb testing.TB, stdout string) benchJSON {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields() // every field is documented here
	var doc benchJSON
	require.NoError(tb, dec.Decode(&doc), stdout)
	assert.False(tb, dec.More(), "one document")
	return doc
}

// TestBench_JSONBaseline: --json prints one document with the documented
// fields; --baseline adds raw kv.Get and kv.Put rows and each op's ratio
// to the one of its kind; a mix has a row per op and a total.
func TestBench_JSONBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	got := runCLI(t, nil, "bench", "--embedded", "--auth", "none", "--baseline", "--json", "--quiet",
		"-t", "get,set-attribute", "-n", "150", "-c", "4", "--sessions", "50")
	require.Equal(t, 0, got.code, got.stderr)
	doc := decodeBenchJSON(t, got.stdout)
	assert.Equal(t, "embedded", doc.Target)
	assert.Equal(t, "none", doc.Auth)
	assert.Equal(t, 4, doc.Clients)
	assert.Equal(t, 150, doc.Count)
	assert.Equal(t, 50, doc.Sessions)
	require.NotNil(t, doc.Baseline)
	assert.Equal(t, 50, doc.Baseline.Keys)
	assert.Greater(t, doc.Baseline.ValueBytes, 100, "a session record's size")
	require.Len(t, doc.Baseline.Rows, 2)
	for i, op := range []string{"kv-get", "kv-put"} {
		r := doc.Baseline.Rows[i]
		assert.Equal(t, op, r.Op)
		assert.Equal(t, uint64(150), r.Ops)
		assert.Positive(t, r.OpsPerSec)
	}
	require.Len(t, doc.Phases, 2)
	for i, want := range []struct{ op, vs string }{{"get", "kv-get"}, {"set-attribute", "kv-put"}} {
		p := doc.Phases[i]
		assert.Equal(t, want.op, p.Name)
		assert.Positive(t, p.ElapsedSeconds)
		require.Len(t, p.Rows, 1)
		r := p.Rows[0]
		assert.Equal(t, uint64(150), r.Ops)
		assert.Zero(t, r.Errors, r.ErrorSamples)
		assert.Equal(t, want.vs, r.Baseline)
		assert.Positive(t, r.Ratio)
		assert.Positive(t, r.P50)
		assert.LessOrEqual(t, r.P50, r.P90)
		assert.LessOrEqual(t, r.P90, r.P99)
		assert.LessOrEqual(t, r.P99, r.P999)
		assert.LessOrEqual(t, r.P999, r.Max)
	}
	assert.Empty(t, got.stderr, "--quiet")

	got = runCLI(t, nil, "bench", "--embedded", "--json", "--quiet", "--mix", "get=3,delete=1", "-n", "200", "--sessions", "20")
	require.Equal(t, 0, got.code, got.stderr)
	doc = decodeBenchJSON(t, got.stdout)
	require.Len(t, doc.Phases, 1)
	p := doc.Phases[0]
	assert.Equal(t, "mix", p.Name)
	require.Len(t, p.Rows, 2)
	assert.Equal(t, uint64(150), p.Rows[0].Ops)
	assert.Equal(t, uint64(50), p.Rows[1].Ops)
	require.NotNil(t, p.Total)
	assert.Equal(t, uint64(200), p.Total.Ops)
	assert.Empty(t, p.Rows[0].Baseline, "no baseline asked")
}

// TestBench_Rate: at --rate for --duration, a phase starts no call before
// it is due, and each call due is started or reported missed. Counts, not
// wall time: the bus may fall behind on a loaded machine, and that shows
// as missed calls, never as more.
func TestBench_Rate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	got := runCLI(t, nil, "bench", "--embedded", "--auth", "none", "--json", "--quiet",
		"-t", "get,set-attribute", "--rate", "100", "-d", "2s", "--sessions", "20")
	require.Equal(t, 0, got.code, got.stderr)
	doc := decodeBenchJSON(t, got.stdout)
	assert.Equal(t, 100.0, doc.Rate)
	require.Len(t, doc.Phases, 2)
	for _, p := range doc.Phases {
		r := p.Rows[0]
		assert.Equal(t, uint64(200), r.Ops+r.Errors+p.Missed, "%s: 2 s at 100/s", p.Name)
		assert.GreaterOrEqual(t, r.Ops, uint64(100), "%s: a bus keeps up with most of 100 calls/s", p.Name)
		// The 200th call is due 1.99 s after the start, so however fast
		// the bus, the phase lasts that long.
		assert.LessOrEqual(t, r.OpsPerSec, 200/1.99, p.Name)
	}
}

// TestBench_RunningBus: against a running bus in accounts mode, bench logs
// in with the admin file of --data-dir, and the baseline with the bus
// account's keys there.
func TestBench_RunningBus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a bus")
	}
	url, admin := startBus(t, app.AuthAccounts)
	dataDir := filepath.Dir(filepath.Dir(admin))
	t.Chdir(t.TempDir()) // no session-bus-data here
	got := runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url}, "bench", "--data-dir", dataDir, "--baseline",
		"-t", "create,get-by-token", "-n", "100", "--sessions", "30")
	require.Equal(t, 0, got.code, got.stderr)
	rows := parseBenchTable(t, got.stdout)
	require.Len(t, rows, 4, got.stdout)
	for i, want := range []benchRow{{op: "kv-get", vs: "-"}, {op: "kv-put", vs: "-"},
		{op: "create", vs: "kv-put"}, {op: "get-by-token", vs: "kv-get"}} {
		assert.Equal(t, want.op, rows[i].op)
		assert.Equal(t, uint64(100), rows[i].ops)
		assert.Zero(t, rows[i].errors)
		assert.Contains(t, rows[i].vs, want.vs)
	}
	assert.Contains(t, got.stderr, "bench: bus at "+url+" as admin")

	// Without the admin login, the bus refuses the anonymous connection.
	got = runCLI(t, []string{"SESSION_BUS_NATS_URL=" + url}, "bench", "-t", "get", "-n", "1")
	assert.Equal(t, 1, got.code, got.stderr)
	assert.Contains(t, got.stderr, "session-bus: connect to "+url)
}

// TestBench_UsageErrors: bad flags exit 2 before anything starts.
func TestBench_UsageErrors(t *testing.T) {
	tests := []struct {
		name      string
		giveEnv   []string
		giveArgs  []string
		wantInErr string
	}{
		{name: "no clients", giveArgs: []string{"-c", "0"}, wantInErr: "--clients: want at least 1"},
		{name: "unknown op", giveArgs: []string{"-t", "get,gte"}, wantInErr: `--tests: unknown operation "gte"; want one of create, get`},
		{name: "bad mix", giveArgs: []string{"--mix", "get=x"}, wantInErr: "--mix: mix entry"},
		{name: "tests and mix", giveArgs: []string{"-t", "get", "--mix", "get=1"}, wantInErr: "--tests and --mix: give one"},
		{name: "tests from env and mix", giveEnv: []string{"SESSION_BUS_BENCH_TESTS=get"}, giveArgs: []string{"--mix", "get=1"}, wantInErr: "--tests and --mix"},
		{name: "count and duration", giveArgs: []string{"-n", "10", "-d", "1s"}, wantInErr: "--count and --duration: give one"},
		{name: "negative count", giveArgs: []string{"-n", "-1"}, wantInErr: "--count: "},
		{name: "zero duration", giveArgs: []string{"-d", "0s"}, wantInErr: "--duration: "},
		{name: "negative rate", giveArgs: []string{"--rate", "-5"}, wantInErr: "--rate: "},
		{name: "bad rate", giveArgs: []string{"--rate", "fast"}, wantInErr: `invalid argument "fast" for "--rate"`},
		{name: "no sessions", giveArgs: []string{"--sessions", "0"}, wantInErr: "--sessions: "},
		{name: "zero timeout", giveArgs: []string{"--timeout", "0s"}, wantInErr: "--timeout: "},
		{name: "callout", giveArgs: []string{"--embedded", "--auth", "callout"}, wantInErr: `--auth: want accounts or none, not "callout"`},
		{name: "auth without embedded", giveArgs: []string{"--auth", "none"}, wantInErr: "--auth goes with --embedded"},
		{name: "embedded with a url", giveArgs: []string{"--embedded", "--nats-url", "nats://x:4222"}, wantInErr: "--nats-url: --embedded measures a bus of its own"},
		{name: "baseline creds alone", giveArgs: []string{"--baseline-creds", "x.creds"}, wantInErr: "--baseline-creds needs --baseline"},
		{name: "bad env", giveEnv: []string{"SESSION_BUS_BENCH_CLIENTS=many"}, wantInErr: "$SESSION_BUS_BENCH_CLIENTS: "},
		{name: "env value out of range", giveEnv: []string{"SESSION_BUS_BENCH_CLIENTS=0"}, wantInErr: "$SESSION_BUS_BENCH_CLIENTS: want at least 1"},
		{name: "unknown flag", giveArgs: []string{"--warmup", "1s"}, wantInErr: "unknown flag: --warmup"},
		{name: "an argument", giveArgs: []string{"get"}, wantInErr: `unknown command "get" for "session-bus bench"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCLI(t, tt.giveEnv, append([]string{"bench"}, tt.giveArgs...)...)
			assert.Equal(t, 2, got.code, got.stderr)
			assert.Contains(t, got.stderr, "session-bus: "+tt.wantInErr)
			assert.Contains(t, got.stderr, "'session-bus bench --help' for usage.")
			assert.Empty(t, got.stdout)
		})
	}
}

func TestBench_Help(t *testing.T) {
	got := runCLI(t, nil, "bench", "--help")
	require.Equal(t, 0, got.code, got.stderr)
	for _, want := range []string{"-t, --tests string", "[$SESSION_BUS_BENCH_TESTS]", "-c, --clients int", "-n, --count int",
		"-d, --duration duration", "--rate float", "--embedded", "--baseline", "--nats-url", "--admin-creds", "list"} {
		assert.Contains(t, got.stdout, want)
	}
}
