package loadgen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTests(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    []string
		wantErr string
	}{
		{name: "in order", give: "list,get, create", want: []string{"list", "get", "create"}},
		{name: "unknown", give: "get,gte", wantErr: `unknown operation "gte"; want one of create, get,`},
		{name: "empty", give: " , ", wantErr: "no operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phases, err := ParseTests(tt.give)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalidConfig)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, p := range phases {
				require.Len(t, p.Ops, 1)
				assert.Equal(t, p.Name, p.Ops[0].Op)
				names = append(names, p.Name)
			}
			assert.Equal(t, tt.want, names)
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    []Weighted
		wantErr string
	}{
		{name: "two", give: "get=90, set-attribute=10", want: []Weighted{{"get", 90}, {"set-attribute", 10}}},
		{name: "no weight", give: "get", wantErr: "want op=weight"},
		{name: "bad weight", give: "get=x", wantErr: "want op=weight"},
		{name: "zero weight", give: "get=0", wantErr: "want op=weight"},
		{name: "twice", give: "get=1,get=2", wantErr: "twice"},
		{name: "unknown", give: "gets=1", wantErr: "unknown operation"},
		{name: "empty", give: "", wantErr: "empty mix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseMix(tt.give)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalidConfig)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "mix", p.Name)
			assert.Equal(t, tt.want, p.Ops)
		})
	}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		give []int
		want []int
	}{
		{give: []int{1}, want: []int{0}},
		{give: []int{3, 1}, want: []int{0, 0, 1, 0}},
		{give: []int{90, 10}, want: []int{0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{give: []int{1, 1, 2}, want: []int{2, 0, 1, 2}},
	}
	for _, tt := range tests {
		got := schedule(tt.give)
		assert.Equal(t, tt.want, got, "weights %v", tt.give)
	}
	sched := schedule([]int{3, 1})
	assert.Equal(t, uint64(4), slotsOf(sched, 0, 5)) // 0,0,1,0 | 0
	assert.Equal(t, uint64(1), slotsOf(sched, 1, 5))
	assert.Equal(t, uint64(250), slotsOf(sched, 1, 1000))
}

func TestDueSlots(t *testing.T) {
	assert.Equal(t, uint64(200), dueSlots(400, 500_000_000))
	assert.Equal(t, uint64(3), dueSlots(3, 1_000_000_000))
	assert.Equal(t, uint64(4), dueSlots(3, 1_000_000_001))
	assert.Equal(t, uint64(1), dueSlots(0.5, 1))
}

func TestReport_WriteTable(t *testing.T) {
	rep := &Report{
		Baseline: &BaselineReport{Bucket: "bench_raw_x", Keys: 10, ValueBytes: 400, Rows: []Row{
			{Op: "kv-get", Ops: 1000, OpsPerSec: 2000, P50: 0.1, P90: 0.2, P99: 0.3, P999: 0.4}}},
		Phases: []PhaseReport{
			{Name: "get", Rows: []Row{{Op: "get", Ops: 500, OpsPerSec: 1000, P50: 0.25, Baseline: "kv-get", Ratio: 0.5}}, Missed: 7},
			{Name: "list", Rows: []Row{{Op: "list", Ops: 5, OpsPerSec: 6.4, Baseline: "kv-get", Ratio: 0.0032}}},
			{Name: "mix", Rows: []Row{{Op: "get", Ops: 9}, {Op: "set-attribute", Ops: 1, Errors: 2, ErrorSamples: []string{"boom"}}},
				Total: &Row{Op: "mix", Ops: 10, Errors: 2}, EndedEarly: "delete used up its prepared sessions"},
		},
	}
	var out bytes.Buffer
	require.NoError(t, rep.WriteTable(&out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Regexp(t, `^OP +OPS +OPS/S +P50 ms +P90 ms +P99 ms +P99.9 ms +ERRORS +VS RAW KV$`, lines[0])
	assert.Regexp(t, `^kv-get +1000 +2000 +0\.100 +0\.200 +0\.300 +0\.400 +0 +-$`, lines[1])
	assert.Regexp(t, `^get +500 +1000 +0\.250 .* 0 +0\.50x kv-get$`, lines[2])
	assert.Regexp(t, ` 0\.0032x kv-get$`, lines[3])
	assert.Regexp(t, `^mix \(all\) +10 `, lines[6])
	assert.Equal(t, len(lines[0]), len(lines[1]), "columns line up")
	text := out.String()
	assert.Contains(t, text, "set-attribute: 2 errors, e.g. boom")
	assert.Contains(t, text, "get: 7 calls due at the rate were not started")
	assert.Contains(t, text, "mix: ended early")
	assert.Contains(t, text, "temporary bucket bench_raw_x")
}
