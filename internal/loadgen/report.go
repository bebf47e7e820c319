package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// Report is what a [Run] measured. Its JSON form is documented in
// docs/BENCH.md; fields are only ever added.
type Report struct {
	// Target describes the bus measured (the caller sets it: a URL, or
	// "embedded"); Auth its auth mode when known.
	Target string `json:"target,omitempty"`
	Auth   string `json:"auth,omitempty"`

	// The load: Count calls per phase, or each phase for DurationSeconds;
	// Rate total calls per second (0: closed loop).
	Clients         int     `json:"clients"`
	Count           int     `json:"count"`
	DurationSeconds float64 `json:"duration_seconds"`
	Rate            float64 `json:"rate"`
	// The sessions prepared: the pool, how many share a login, and the
	// sessions of other logins.
	Sessions      int `json:"sessions"`
	LoginSessions int `json:"login_sessions"`
	OtherSessions int `json:"other_sessions"`

	// Baseline is the raw KV floor, when it ran.
	Baseline *BaselineReport `json:"baseline,omitempty"`
	// Phases in the order they ran.
	Phases []PhaseReport `json:"phases"`
	// Interrupted is set when the run's ctx ended before every phase ran.
	Interrupted bool `json:"interrupted,omitempty"`
}

// BaselineReport is the raw JetStream KV floor: kv.Get and kv.Put of
// ValueBytes on a bucket configured as the sessions bucket, with the
// same clients, count or duration and rate as the bus's phases.
type BaselineReport struct {
	// Bucket is the temporary bucket it ran on (deleted after); Keys how
	// many keys it spread over (the pool's size).
	Bucket     string `json:"bucket"`
	Keys       int    `json:"keys"`
	ValueBytes int    `json:"value_bytes"`
	// Rows are "kv-get" and "kv-put".
	Rows []Row `json:"rows"`
}

// PhaseReport is one phase: one row per operation; a mix also has a Total.
type PhaseReport struct {
	Name           string  `json:"name"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Rows           []Row   `json:"rows"`
	Total          *Row    `json:"total,omitempty"`
	// Missed counts calls due at the Rate within the duration that no
	// client was free to start before it ended.
	Missed uint64 `json:"missed,omitempty"`
	// EndedEarly says why the phase stopped before its count or duration.
	EndedEarly  string `json:"ended_early,omitempty"`
	Interrupted bool   `json:"interrupted,omitempty"`
}

// Row is one operation's figures. Ops counts the calls that succeeded, and
// OpsPerSec and the latencies are theirs; Errors counts the calls that
// failed. Latencies are in milliseconds, from the call's start, or with a
// rate from when it was due.
type Row struct {
	Op        string  `json:"op"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
	Mean      float64 `json:"mean_ms"`
	// Baseline names the raw KV row this one is compared with ("kv-get"
	// for reads, "kv-put" for writes) and Ratio is OpsPerSec over its
	// OpsPerSec; set for single-operation phases of a run with a baseline.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	// ErrorSamples are up to 3 distinct error messages.
	ErrorSamples []string `json:"error_samples,omitempty"`

	class Class
}

// WriteTable prints the report as a table, one row per operation
// (baseline first), then notes: errors, missed calls, phases that ended
// early.
func (r *Report) WriteTable(w io.Writer) error {
	cells := [][]string{{"OP", "OPS", "OPS/S", "P50 ms", "P90 ms", "P99 ms", "P99.9 ms", "ERRORS", "VS RAW KV"}}
	var notes []string
	row := func(x Row) {
		vs := "-"
		if x.Baseline != "" {
			vs = fmt.Sprintf("%sx %s", ratio(x.Ratio), x.Baseline)
		}
		cells = append(cells, []string{x.Op, fmt.Sprint(x.Ops), fmt.Sprintf("%.0f", x.OpsPerSec),
			fmt.Sprintf("%.3f", x.P50), fmt.Sprintf("%.3f", x.P90), fmt.Sprintf("%.3f", x.P99), fmt.Sprintf("%.3f", x.P999),
			fmt.Sprint(x.Errors), vs})
		if x.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d errors, e.g. %s", x.Op, x.Errors, strings.Join(x.ErrorSamples, "; ")))
		}
	}
	if b := r.Baseline; b != nil {
		for _, x := range b.Rows {
			row(x)
		}
		notes = append(notes, fmt.Sprintf("raw KV: temporary bucket %s configured as the sessions bucket, %d keys of %d bytes",
			b.Bucket, b.Keys, b.ValueBytes))
	}
	for _, p := range r.Phases {
		for _, x := range p.Rows {
			row(x)
		}
		if p.Total != nil {
			x := *p.Total
			x.Op += " (all)"
			row(x)
		}
		if p.Missed > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d calls due at the rate were not started before the end (the bus fell behind)", p.Name, p.Missed))
		}
		if p.EndedEarly != "" {
			notes = append(notes, fmt.Sprintf("%s: ended early after %.1fs: %s", p.Name, p.ElapsedSeconds, p.EndedEarly))
		}
		if p.Interrupted {
			notes = append(notes, fmt.Sprintf("%s: interrupted", p.Name))
		}
	}
	var b strings.Builder
	writeColumns(&b, cells)
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeColumns writes cells as columns two spaces apart, the first
// aligned left and the others right.
func writeColumns(b *strings.Builder, cells [][]string) {
	var widths []int
	for _, line := range cells {
		for i, c := range line {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-len(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
}

// ratio formats r with two decimals, or two significant digits below 0.1
// (a list is 0.0032x a kv.Get, not 0.00x).
func ratio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.2g", r)
	}
	return fmt.Sprintf("%.2f", r)
}
