package events

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chain writes n changes the way a store does, one read and one write each,
// and returns the log the last write carried.
func chain(n int, start time.Time, step time.Duration) string {
	var log string
	for i := 1; i <= n; i++ {
		h := nats.Header{}
		h.Set(HeaderOp, "updated")
		h.Set(HeaderService, "svc")
		h.Set(HeaderKeys, `["k`+strconv.Itoa(i)+`"]`)
		if log != "" {
			h.Set(HeaderLog, log)
		}
		at := start.Add(time.Duration(i) * step)
		log = NextLog(StashLog(h, uint64(i), at), at.Add(step))
	}
	return log
}

func TestChangeLog_KeepsTheLastEntries(t *testing.T) {
	log, err := ParseLog(chain(20, time.Now(), time.Millisecond))
	require.NoError(t, err)
	require.Len(t, log, MaxLogEntries)
	for i, e := range log {
		assert.Equal(t, uint64(20-MaxLogEntries+1+i), e.Seq, "oldest first, newest kept")
		assert.Equal(t, "svc", e.Service)
		assert.Equal(t, []string{"k" + strconv.Itoa(int(e.Seq))}, e.Keys)
	}
}

func TestChangeLog_DropsEntriesOlderThanTheWindow(t *testing.T) {
	log, err := ParseLog(chain(5, time.Now(), LogWindow/2))
	require.NoError(t, err)
	require.Len(t, log, 2, "a session changed now and then carries a short log")
	assert.Equal(t, uint64(5), log[1].Seq)
}

func TestChangeLog_DamagedLogLosesOnlyHistory(t *testing.T) {
	h := nats.Header{}
	h.Set(HeaderOp, "created")
	h.Set(HeaderLog, "not json")
	log, err := ParseLog(NextLog(StashLog(h, 7, time.Now()), time.Now()))
	require.NoError(t, err)
	require.Len(t, log, 1)
	assert.Equal(t, uint64(7), log[0].Seq)
	assert.Equal(t, "", NextLog("", time.Now()), "nothing to log")
}
