package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets a [Histogram]'s precision: each power of two above
// 2^subBits ns is split into 2^(subBits-1) buckets of equal width, so a
// bucket is at most 1/2^(subBits-1) (0.8 %) of the values it holds wide.
const subBits = 8

// numBuckets covers every non-negative int64 value.
const numBuckets = 1<<subBits + (63-subBits)<<(subBits-1)

// Histogram counts durations in log-scaled buckets, as HdrHistogram does:
// exact below 256 ns, within 0.8 % above, in 59 KiB whatever the range.
// The zero value is empty and ready; it is not safe for concurrent use
// (give each goroutine its own and [Histogram.Merge] them).
type Histogram struct {
	counts   []uint64 // allocated on the first Record
	n        uint64
	sum      uint64 // ns
	min, max int64  // ns
}

// bucketOf returns the bucket of v >= 0.
func bucketOf(v int64) int {
	u := uint64(v)
	if u < 1<<subBits {
		return int(u)
	}
	e := bits.Len64(u) - subBits // >= 1: how far the top subBits bits are shifted
	m := u >> e                  // in [2^(subBits-1), 2^subBits)
	return 1<<subBits + (e-1)<<(subBits-1) + int(m-1<<(subBits-1))
}

// highest returns the largest value bucket b holds.
func highest(b int) int64 {
	if b < 1<<subBits {
		return int64(b)
	}
	b -= 1 << subBits
	e := b>>(subBits-1) + 1
	m := uint64(b&(1<<(subBits-1)-1)) + 1<<(subBits-1)
	return int64((m+1)<<e - 1)
}

// Record adds one duration; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
	h.sum += uint64(v)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest duration recorded, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average duration recorded; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the duration below or at which a fraction q (0..1) of
// the recorded ones lie: the highest value of the bucket holding the
// ceil(q*Count())-th smallest, never above Max. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(min(max(q, 0), 1) * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		if seen += c; seen >= rank {
			return time.Duration(min(max(highest(b), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
