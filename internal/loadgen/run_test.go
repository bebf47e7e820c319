package loadgen

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// memoryTarget is a bus in process on the memory store, wrapped by wrap
// (nil: as is).
func memoryTarget(tb testing.TB, wrap func(bus.Sessions) bus.Sessions) Target {
	tb.Helper()
	m, err := bus.New(bus.NewMemoryStore(), "bench", time.Hour, bus.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(tb, err)
	var s bus.Sessions = m
	if wrap != nil {
		s = wrap(m)
	}
	return Target{Client: func(...client.Option) (bus.Sessions, error) { return s, nil }}
}

// testConfig is a small load with a progress line into progress.
func testConfig(progress *bytes.Buffer) Config {
	cfg := DefaultConfig()
	cfg.Clients, cfg.Sessions, cfg.LoginSessions = 4, 20, 5
	cfg.ProgressInterval = 10 * time.Millisecond
	if progress != nil {
		cfg.Progress = progress
	}
	return cfg
}

func rowsByOp(rep *Report) map[string]Row {
	rows := map[string]Row{}
	for _, p := range rep.Phases {
		for _, r := range p.Rows {
			rows[r.Op] = r
		}
	}
	return rows
}

// TestRun_EveryOp: with a count, every operation makes exactly that many
// calls, none failing.
func TestRun_EveryOp(t *testing.T) {
	var progress bytes.Buffer
	cfg := testConfig(&progress)
	cfg.Count = 60
	rep, err := Run(context.Background(), cfg, memoryTarget(t, nil))
	require.NoError(t, err)
	require.Len(t, rep.Phases, len(opTable))
	for i, p := range rep.Phases {
		assert.Equal(t, opTable[i].name, p.Name)
		require.Len(t, p.Rows, 1)
		r := p.Rows[0]
		assert.Equal(t, uint64(60), r.Ops, r.Op)
		assert.Zero(t, r.Errors, "%s: %v", r.Op, r.ErrorSamples)
		assert.Positive(t, r.OpsPerSec, r.Op)
		assert.LessOrEqual(t, r.P50, r.P99, r.Op)
		assert.LessOrEqual(t, r.P99, r.Max, r.Op)
		assert.Empty(t, p.EndedEarly)
	}
	assert.Contains(t, progress.String(), "setup: sessions: 20/20")
	assert.Contains(t, progress.String(), "list: 60 ops")
}

// TestRun_Mix: a mix's calls follow its weights exactly.
func TestRun_Mix(t *testing.T) {
	cfg := testConfig(nil)
	mix, err := ParseMix("get=3,set-attribute=1,delete=1")
	require.NoError(t, err)
	cfg.Phases, cfg.Count = []Phase{mix}, 500
	rep, err := Run(context.Background(), cfg, memoryTarget(t, nil))
	require.NoError(t, err)
	rows := rowsByOp(rep)
	assert.Equal(t, uint64(300), rows["get"].Ops)
	assert.Equal(t, uint64(100), rows["set-attribute"].Ops)
	assert.Equal(t, uint64(100), rows["delete"].Ops, "exactly as many sessions to delete as deletes")
	require.NotNil(t, rep.Phases[0].Total)
	assert.Equal(t, uint64(500), rep.Phases[0].Total.Ops)
	assert.Empty(t, rep.Phases[0].EndedEarly)
}

// TestRun_DeletesUsedUp: a timed delete phase ends when its prepared
// sessions are used up, having deleted each once.
func TestRun_DeletesUsedUp(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Phases, _ = ParseTests("delete")
	cfg.Duration, cfg.DeleteSessions = time.Minute, 40
	rep, err := Run(context.Background(), cfg, memoryTarget(t, nil))
	require.NoError(t, err)
	p := rep.Phases[0]
	assert.Equal(t, uint64(40), p.Rows[0].Ops)
	assert.Zero(t, p.Rows[0].Errors, p.Rows[0].ErrorSamples)
	assert.Contains(t, p.EndedEarly, "delete used up")
	assert.Less(t, p.ElapsedSeconds, 30.0)
}

// TestRun_Rate: at a rate, a timed phase starts no more calls than are
// due, and every due call is started or counted as missed.
func TestRun_Rate(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Phases, _ = ParseTests("get")
	cfg.Rate, cfg.Duration, cfg.Clients = 400, 500*time.Millisecond, 8
	rep, err := Run(context.Background(), cfg, memoryTarget(t, nil))
	require.NoError(t, err)
	p := rep.Phases[0]
	r := p.Rows[0]
	assert.Equal(t, uint64(200), r.Ops+r.Errors+p.Missed, "every due call started or missed")
	assert.GreaterOrEqual(t, r.Ops, uint64(100), "an in-memory bus keeps up with most of 400/s")
	// The last call is not started before it is due, at 199/400 s.
	assert.LessOrEqual(t, r.OpsPerSec, 400*1.01)
}

// TestRun_RateCount: with a count, every call runs however late.
func TestRun_RateCount(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Phases, _ = ParseTests("get,create")
	cfg.Rate, cfg.Count = 1000, 100
	rep, err := Run(context.Background(), cfg, memoryTarget(t, nil))
	require.NoError(t, err)
	for _, p := range rep.Phases {
		assert.Equal(t, uint64(100), p.Rows[0].Ops)
		assert.Zero(t, p.Missed)
		assert.LessOrEqual(t, p.Rows[0].OpsPerSec, 1000*100/99.0+1, "the 100th call is due at 99 ms")
	}
}

// failingGets fails every GetSession.
type failingGets struct{ bus.Sessions }

func (failingGets) GetSession(context.Context, string) (*bus.Session, error) {
	return nil, bus.ErrUnavailable
}

// TestRun_Errors: failed calls are counted and sampled, not returned.
func TestRun_Errors(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Phases, _ = ParseTests("get,refresh")
	cfg.Count = 30
	rep, err := Run(context.Background(), cfg, memoryTarget(t, func(s bus.Sessions) bus.Sessions { return failingGets{s} }))
	require.NoError(t, err)
	rows := rowsByOp(rep)
	assert.Zero(t, rows["get"].Ops)
	assert.Equal(t, uint64(30), rows["get"].Errors)
	assert.Equal(t, []string{bus.ErrUnavailable.Error()}, rows["get"].ErrorSamples)
	assert.Equal(t, uint64(30), rows["refresh"].Ops)

	var out bytes.Buffer
	require.NoError(t, rep.WriteTable(&out))
	assert.Contains(t, out.String(), "get: 30 errors, e.g. "+bus.ErrUnavailable.Error())
}

// interruptingGets cancels the run on its 20th call.
type interruptingGets struct {
	bus.Sessions
	n      atomic.Int64
	cancel context.CancelFunc
}

func (s *interruptingGets) GetSession(ctx context.Context, id string) (*bus.Session, error) {
	if s.n.Add(1) == 20 {
		s.cancel()
	}
	return s.Sessions.GetSession(ctx, id)
}

// TestRun_Interrupted: a run whose ctx ends returns the phases that ran,
// the last one marked, and the ctx's error.
func TestRun_Interrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig(nil)
	cfg.Phases, _ = ParseTests("create,get,list")
	cfg.Count, cfg.Duration = 0, time.Minute
	cfg.Phases[0] = Phase{Name: "create", Ops: []Weighted{{Op: "create", Weight: 1}}}
	cfg.Count = 50
	rep, err := Run(ctx, cfg, memoryTarget(t, func(s bus.Sessions) bus.Sessions {
		return &interruptingGets{Sessions: s, cancel: cancel}
	}))
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, rep)
	assert.True(t, rep.Interrupted)
	require.Len(t, rep.Phases, 2, "list never started")
	assert.Equal(t, uint64(50), rep.Phases[0].Rows[0].Ops)
	assert.True(t, rep.Phases[1].Interrupted)
	assert.Zero(t, rep.Phases[1].Rows[0].Errors, "calls cut short are not the bus's errors")
}

// TestRun_ClientOptions: an op with client options runs on a client of
// its own, made once.
func TestRun_ClientOptions(t *testing.T) {
	var made [][]client.Option
	target := memoryTarget(t, nil)
	inner := target.Client
	target.Client = func(opts ...client.Option) (bus.Sessions, error) {
		made = append(made, opts)
		return inner(opts...)
	}
	r := &runner{target: target, clients: map[string]bus.Sessions{}}
	var err error
	r.base, err = target.Client()
	require.NoError(t, err)
	o, _ := lookupOp("get")
	o.name, o.clientOptions = "get-with-timeout", []client.Option{client.WithTimeout(time.Second)}
	for range 2 {
		_, err := r.client(o)
		require.NoError(t, err)
	}
	plain, _ := lookupOp("get")
	c, err := r.client(plain)
	require.NoError(t, err)
	assert.Same(t, r.base, c)
	require.Len(t, made, 2, "the base client and one for the op")
	assert.Len(t, made[1], 1)
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		give    func(*Config)
		wantErr string
	}{
		{name: "defaults", give: func(*Config) {}},
		{name: "no clients", give: func(c *Config) { c.Clients = 0 }, wantErr: "clients"},
		{name: "negative count", give: func(c *Config) { c.Count = -1 }, wantErr: "count"},
		{name: "no count nor duration", give: func(c *Config) { c.Duration = 0 }, wantErr: "duration"},
		{name: "negative rate", give: func(c *Config) { c.Rate = -1 }, wantErr: "rate"},
		{name: "no sessions", give: func(c *Config) { c.Sessions = 0 }, wantErr: "sessions"},
		{name: "unknown op", give: func(c *Config) { c.Phases = []Phase{{Name: "x", Ops: []Weighted{{Op: "x", Weight: 1}}}} }, wantErr: `unknown operation "x"`},
		{name: "zero weight", give: func(c *Config) { c.Phases[0].Ops[0].Weight = 0 }, wantErr: "weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.give(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	_, err := Run(context.Background(), DefaultConfig(), Target{})
	assert.True(t, errors.Is(err, ErrInvalidConfig), "a target without a client")
}
