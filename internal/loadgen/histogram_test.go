package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHistogram_Buckets: every value falls in a bucket whose range holds
// it, buckets are in order, and none is wider than 1/128 of its values.
func TestHistogram_Buckets(t *testing.T) {
	values := []int64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<20 + 1, 123456789, math.MaxInt64}
	for range 10000 {
		values = append(values, rand.Int64N(1<<uint(rand.IntN(62)+1)))
	}
	for _, v := range values {
		b := bucketOf(v)
		require.Less(t, b, numBuckets, "value %d", v)
		assert.GreaterOrEqual(t, highest(b), v, "value %d", v)
		if b > 0 {
			assert.Less(t, highest(b-1), v, "value %d is in the lowest bucket that holds it", v)
			width := highest(b) - highest(b-1)
			assert.LessOrEqual(t, float64(width), float64(v)/128+1, "value %d", v)
		}
	}
	assert.Equal(t, numBuckets-1, bucketOf(math.MaxInt64))
}

func TestHistogram_Quantile(t *testing.T) {
	tests := []struct {
		name string
		give []time.Duration
		want map[float64]time.Duration
	}{
		{name: "empty", want: map[float64]time.Duration{0.5: 0, 1: 0}},
		{name: "one", give: []time.Duration{3 * time.Millisecond}, want: map[float64]time.Duration{0: 3 * time.Millisecond, 0.5: 3 * time.Millisecond, 1: 3 * time.Millisecond}},
		{name: "small exact", give: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, want: map[float64]time.Duration{0.5: 5, 0.9: 9, 0.99: 10, 1: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tt.give {
				h.Record(d)
			}
			for q, want := range tt.want {
				assert.Equal(t, want, h.Quantile(q), "q=%v", q)
			}
		})
	}
}

// TestHistogram_MatchesSort: quantiles of random latencies are within
// 0.8 % of the exact ones, after merging per-goroutine histograms.
func TestHistogram_MatchesSort(t *testing.T) {
	var parts [4]Histogram
	var all []time.Duration
	for i := range 100000 {
		d := time.Duration(rand.ExpFloat64() * float64(500*time.Microsecond))
		all = append(all, d)
		parts[i%4].Record(d)
	}
	var h Histogram
	for i := range parts {
		h.Merge(&parts[i])
	}
	slices.Sort(all)
	require.Equal(t, uint64(len(all)), h.Count())
	assert.Equal(t, all[len(all)-1], h.Max())
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(math.Ceil(q*float64(len(all))))-1]
		got := h.Quantile(q)
		t.Run(fmt.Sprint(q), func(t *testing.T) {
			assert.GreaterOrEqual(t, got, exact)
			assert.LessOrEqual(t, float64(got), float64(exact)*(1+1.0/128)+1)
		})
	}
}
