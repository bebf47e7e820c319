package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
	"github.com/session-bus/session-bus/events"
	"github.com/session-bus/session-bus/internal/natstest"
)

// faultServiceID is the caller id of the fault tests' client: the id every
// change event they cause must carry.
const faultServiceID = "fault-svc"

// faultQuiet discards the listeners' logs.
var faultQuiet = slog.New(slog.DiscardHandler)

// childBus is `session-bus serve --nats-url …` as a child process that the
// test can SIGKILL and start again. Its stderr goes to a file in the test's
// temp dir, printed when the test fails.
type childBus struct {
	name string
	bin  string
	args []string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed once proc has exited
	logs []string      // stderr files, one per start
}

// startChildBus starts a bus against an external NATS (args must name
// --nats-url) and waits for its "serving on" line.
func startChildBus(tb testing.TB, bin, name string, args ...string) *childBus {
	tb.Helper()
	b := &childBus{name: name, bin: bin, args: args}
	tb.Cleanup(func() {
		b.kill(tb)
		if tb.Failed() {
			b.dumpLogs(tb)
		}
	})
	b.start(tb)
	return b
}

func (b *childBus) start(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	logPath := filepath.Join(tb.TempDir(), fmt.Sprintf("%s-%d.log", b.name, len(b.logs)))
	logFile, err := os.Create(logPath)
	require.NoError(tb, err)
	defer func() { _ = logFile.Close() }() // the child has its own descriptor
	cmd := exec.Command(b.bin, append([]string{"serve"}, b.args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SESSION_BUS_") })
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "session-bus serving on ") {
				close(ready)
			}
		}
		_ = cmd.Wait()
	}()
	b.proc, b.done, b.logs = cmd, done, append(b.logs, logPath)
	select {
	case <-ready:
	case <-done:
		tb.Fatalf("%s exited before it was ready: %v (log %s)", b.name, cmd.ProcessState, logPath)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		tb.Fatalf("%s not ready within 30s", b.name)
	}
}

// kill SIGKILLs the process and waits until it has exited. Safe to call
// on a process that is not running.
func (b *childBus) kill(tb testing.TB) {
	tb.Helper()
	b.mu.Lock()
	proc, done := b.proc, b.done
	b.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Process.Kill() // SIGKILL
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Errorf("%s (pid %d) did not exit within 10s of SIGKILL", b.name, proc.Process.Pid)
	}
}

// restart kills the process and starts it again with the same arguments.
func (b *childBus) restart(tb testing.TB) {
	tb.Helper()
	b.kill(tb)
	b.start(tb)
}

func (b *childBus) dumpLogs(tb testing.TB) {
	tb.Helper()
	for _, p := range b.logs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		tb.Logf("--- %s: last lines of %s ---\n%s", b.name, filepath.Base(p), strings.Join(lines, "\n"))
	}
}

// received is one delivery to a collector's handler.
type received struct {
	ev events.Event
	at time.Time
}

// collector records the events a listener hands it: the first delivery of
// each event id in order, and every repeated one. It checks, as it goes,
// that each session's events come in strictly increasing revision.
type collector struct {
	mu      sync.Mutex
	seen    map[string]int // event id -> deliveries
	firsts  []received
	dups    int
	lastRev map[string]uint64
	order   []string // revision order violations

	listener *events.Listener
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, lastRev: map[string]uint64{}}
}

func (c *collector) handle(_ context.Context, ev events.Event) error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[ev.ID]++
	if c.seen[ev.ID] > 1 {
		c.dups++
		return nil
	}
	if last, ok := c.lastRev[ev.SessionID]; ok && ev.Revision <= last {
		c.order = append(c.order, fmt.Sprintf("session %s: %s %s rev %d after rev %d", ev.SessionID, ev.ID, ev.Type, ev.Revision, last))
	}
	c.lastRev[ev.SessionID] = max(c.lastRev[ev.SessionID], ev.Revision)
	c.firsts = append(c.firsts, received{ev: ev, at: now})
	return nil
}

// snapshot returns the first deliveries, the repeated-delivery count and the
// order violations so far.
func (c *collector) snapshot() ([]received, int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.firsts), c.dups, slices.Clone(c.order)
}

// listenAll attaches a group listener and a broadcast listener to the
// events stream, both from the beginning. The group is what a user would
// run (it may redeliver); the broadcast sees each stored message once, so a
// repeated event id there means the stream stored the event twice.
func listenAll(tb testing.TB, srv *server.Server, group string) (grp, stored *collector) {
	tb.Helper()
	js, err := jetstream.New(natstest.Connect(tb, srv))
	require.NoError(tb, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grp, stored = newCollector(), newCollector()
	gl, err := events.Listen(ctx, js, group, grp.handle, events.WithDeliverAll(), events.WithLogger(faultQuiet))
	require.NoError(tb, err)
	grp.listener = gl
	tb.Cleanup(func() { _ = gl.Close() })
	bl, err := events.Broadcast(ctx, js, stored.handle, events.WithDeliverAll(), events.WithLogger(faultQuiet))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = bl.Close() })
	return grp, stored
}

// outcome is what a caller knows about one operation.
type outcome int

const (
	acked   outcome = iota // the bus answered success: the change happened
	failed                 // the bus answered a 4xx error: it did not happen
	unknown                // no answer, or 5xx: it may or may not have happened
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return acked
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, bus.ErrInternal):
		return unknown
	}
	return failed
}

// tally counts operations by outcome.
type tally struct{ acked, failed, unknown int }

func (t *tally) add(o outcome) {
	switch o {
	case acked:
		t.acked++
	case failed:
		t.failed++
	default:
		t.unknown++
	}
}

type eventKey struct {
	session string
	typ     events.Type
}

// slot is one login of the workload: a session created, changed and
// deleted by one worker, so its operations never overlap.
type slot struct {
	login string
	// id of the current session; "" until a create is acknowledged (or an
	// unknown create is found by token).
	id      string
	deleted bool
	// keys whose set was acknowledged and not yet removed: removing one is
	// certainly a change.
	keys []string
	// creates whose outcome is unknown and whose session was not found:
	// each may have created a session that no later operation touches.
	lostCreates int
}

// workload drives the fault test's operations and records their outcomes.
type workload struct {
	c   *client.Client
	ctx context.Context

	mu     sync.Mutex
	ops    map[eventKey]*tally
	byKind map[string]*tally
	seq    int // unique attribute keys and values
}

func (w *workload) record(kind string, id string, typ events.Type, o outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byKind[kind] == nil {
		w.byKind[kind] = &tally{}
	}
	w.byKind[kind].add(o)
	if id == "" {
		return
	}
	k := eventKey{id, typ}
	if w.ops[k] == nil {
		w.ops[k] = &tally{}
	}
	w.ops[k].add(o)
}

func (w *workload) next() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	return w.seq
}

// step runs one operation on s, chosen from its state and r. last is the
// slot's final planned operation: the delete.
func (w *workload) step(s *slot, r *rand.Rand, last bool) {
	if s.deleted {
		return
	}
	if s.id == "" {
		w.create(s)
		return
	}
	if last {
		err := w.c.DeleteSession(w.ctx, s.id)
		w.record("delete", s.id, events.SessionDeleted, classify(err))
		s.deleted = true // whatever the outcome: one delete per session
		return
	}
	n := w.next()
	switch p := r.IntN(100); {
	case p < 20 && len(s.keys) > 0:
		i := r.IntN(len(s.keys))
		key := s.keys[i]
		s.keys = slices.Delete(s.keys, i, i+1) // whatever the outcome: it may be gone
		err := w.c.RemoveAttribute(w.ctx, s.id, key)
		w.record("remove_attribute", s.id, events.SessionUpdated, classify(err))
	case p < 55:
		key := fmt.Sprintf("k%d", n)
		err := w.c.SetAttribute(w.ctx, s.id, key, fmt.Sprintf("v%d", n))
		o := classify(err)
		if o == acked {
			s.keys = append(s.keys, key)
		}
		w.record("set_attribute", s.id, events.SessionUpdated, o)
	case p < 75:
		_, err := w.c.RefreshSession(w.ctx, s.id)
		w.record("refresh", s.id, events.SessionRefreshed, classify(err))
	default:
		cur, err := w.c.GetSession(w.ctx, s.id)
		if err != nil {
			// No update was sent: nothing changed.
			w.record("update", s.id, events.SessionUpdated, failed)
			return
		}
		key := fmt.Sprintf("u%d", n)
		cur.Attributes[key] = fmt.Sprintf("v%d", n)
		_, err = w.c.UpdateSession(w.ctx, cur)
		o := classify(err)
		if o == acked {
			s.keys = append(s.keys, key)
		}
		w.record("update", s.id, events.SessionUpdated, o)
	}
}

// create creates s's session with a fresh token. When the outcome is
// unknown, it looks the token up: a session found is adopted (its create
// certainly happened), one not found is counted as a possibly lost create.
func (w *workload) create(s *slot) {
	token := fmt.Sprintf("fault-token-%d", w.next())
	got, err := w.c.CreateSession(w.ctx, s.login, token)
	switch classify(err) {
	case acked:
		s.id = got.SessionID
		w.record("create", s.id, events.SessionCreated, acked)
	case failed:
		w.record("create", "", events.SessionCreated, failed)
	case unknown:
		found, gerr := w.c.GetSessionByToken(w.ctx, token)
		if gerr == nil {
			s.id = found.SessionID
			w.record("create", s.id, events.SessionCreated, unknown)
			return
		}
		s.lostCreates++
		w.record("create", "", events.SessionCreated, unknown)
	}
}

// TestFault_KillBusUnderLoad SIGKILLs bus processes three times while a
// workload of 1,000 mixed operations runs, and checks that every
// acknowledged change is announced, no change is announced twice or out of
// order, and nothing is announced that cannot have happened.
func TestFault_KillBusUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills bus processes under load")
	}
	const (
		slots     = 60
		totalOps  = 1000
		workers   = 10
		pause     = 60 * time.Millisecond
		killEvery = 1800 * time.Millisecond
	)
	bin := buildBinary(t)
	srv := natstest.RunServer(t)
	args := []string{"--auth", "none", "--nats-url", srv.ClientURL(), "--data-dir", t.TempDir(), "--touch-interval", "1h", "--relay-lease-ttl", "1s"}
	// a starts first, so a's relay holds the lease: each kill below hits
	// the active relay (a, then b, which took over, then a again).
	a := startChildBus(t, bin, "bus-a", append(args, "--service-id", "bus-a")...)
	b := startChildBus(t, bin, "bus-b", append(args, "--service-id", "bus-b")...)
	grp, stored := listenAll(t, srv, "fault-kill")

	c, err := client.New(natstest.Connect(t, srv), client.WithServiceID(faultServiceID), client.WithTimeout(2*time.Second))
	require.NoError(t, err)
	w := &workload{c: c, ctx: context.Background(), ops: map[eventKey]*tally{}, byKind: map[string]*tally{}}

	// Plan: each slot gets 16 or 17 operations (create first, delete last),
	// each worker owns slots%workers and interleaves its slots' operations.
	all := make([]*slot, slots)
	plans := make([][]int, workers)
	for i := range all {
		all[i] = &slot{login: fmt.Sprintf("fault-user-%d", i)}
		n := totalOps / slots
		if i < totalOps%slots {
			n++
		}
		for range n {
			plans[i%workers] = append(plans[i%workers], i)
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for wi, plan := range plans {
		r := rand.New(rand.NewPCG(uint64(wi), 42))
		r.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
		remaining := map[int]int{}
		for _, si := range plan {
			remaining[si]++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(pause)
			defer tick.Stop()
			for _, si := range plan {
				remaining[si]--
				w.step(all[si], r, remaining[si] == 0)
				<-tick.C
			}
		}()
	}

	kills := []*childBus{a, b, a}
	for _, victim := range kills {
		select {
		case <-time.After(killEvery):
		case <-t.Context().Done():
		}
		t0 := time.Now()
		victim.restart(t)
		t.Logf("%6.2fs: SIGKILLed and restarted %s (%v)", time.Since(start).Seconds(), victim.name, time.Since(t0).Round(time.Millisecond))
	}
	wg.Wait()
	t.Logf("workload done after %.2fs", time.Since(start).Seconds())

	// A barrier: once its event is delivered, every earlier change has been
	// (the relay announces in change order, the group delivers in order).
	barrier, err := c.CreateSession(context.Background(), "fault-barrier", "fault-barrier-token")
	require.NoError(t, err)

	delivered := func(col *collector) map[eventKey]int {
		firsts, _, _ := col.snapshot()
		n := map[eventKey]int{}
		for _, r := range firsts {
			n[eventKey{r.ev.SessionID, r.ev.Type}]++
		}
		return n
	}
	if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		n := delivered(grp)
		assert.Equal(ct, 1, n[eventKey{barrier.SessionID, events.SessionCreated}], "barrier event")
		for k, ops := range w.ops {
			assert.GreaterOrEqual(ct, n[k], ops.acked, "%s %s", k.session, k.typ)
		}
	}, 20*time.Second, 100*time.Millisecond, "every acknowledged change announced") {
		logMissing(t, srv, w, grp, stored)
		t.FailNow()
	}

	firsts, groupDups, order := grp.snapshot()
	storedFirsts, storedDups, _ := stored.snapshot()
	n := delivered(grp)

	// Per session and type: at least the acknowledged changes, at most
	// those plus the ones whose outcome is unknown. A create found by
	// token certainly happened: exactly one created event.
	known := map[string]bool{barrier.SessionID: true}
	for k, ops := range w.ops {
		known[k.session] = true
		got := n[k]
		if k.typ == events.SessionCreated {
			assert.Equal(t, 1, got, "session %s: created events", k.session)
			continue
		}
		assert.GreaterOrEqual(t, got, ops.acked, "session %s: %s events vs acknowledged ops", k.session, k.typ)
		assert.LessOrEqual(t, got, ops.acked+ops.unknown, "session %s: %s events vs acknowledged+unknown ops %+v", k.session, k.typ, *ops)
	}
	for k, got := range n {
		if known[k.session] || got == 0 {
			continue
		}
		_, counted := w.ops[k]
		assert.True(t, counted || k.typ == events.SessionCreated, "event %s for session %s no operation touched", k.typ, k.session)
	}
	// Sessions no operation knows of can only come from creates with an
	// unknown outcome: at most one per such create, per login.
	lost := map[string]int{}
	for _, s := range all {
		lost[s.login] = s.lostCreates
	}
	phantoms := map[string]int{}
	for _, r := range firsts {
		if !known[r.ev.SessionID] {
			phantoms[r.ev.LoginID]++
		}
	}
	for login, got := range phantoms {
		assert.LessOrEqual(t, got, lost[login], "login %s: sessions created that no acknowledged create made", login)
	}

	assert.Empty(t, order, "each session's events in strictly increasing revision")
	assert.Zero(t, storedDups, "an event id stored twice in the events stream")
	assert.Len(t, storedFirsts, len(firsts), "the group and the stream hold the same events")
	for _, r := range firsts {
		if r.ev.Type != events.SessionExpired {
			assert.Equal(t, faultServiceID, r.ev.ServiceID, "event %s (%s) names the calling service", r.ev.ID, r.ev.Type)
		}
	}

	var sum tally
	for _, kind := range slices.Sorted(maps.Keys(w.byKind)) {
		tl := w.byKind[kind]
		sum.acked, sum.failed, sum.unknown = sum.acked+tl.acked, sum.failed+tl.failed, sum.unknown+tl.unknown
		t.Logf("%-17s acked %4d  failed %3d  unknown %3d", kind, tl.acked, tl.failed, tl.unknown)
	}
	extra := 0
	for k, ops := range w.ops {
		if k.typ != events.SessionCreated {
			extra += max(n[k]-ops.acked, 0)
		}
	}
	phantomTotal := 0
	for _, got := range phantoms {
		phantomTotal += got
	}
	t.Logf("ops %d: acked %d, failed %d, unknown %d; events %d distinct (%d beyond acknowledged ops, %d sessions from unconfirmed creates); group redeliveries %d, stored duplicates %d",
		sum.acked+sum.failed+sum.unknown, sum.acked, sum.failed, sum.unknown, len(firsts), extra, phantomTotal, groupDups, storedDups)
	assert.Equal(t, totalOps, sum.acked+sum.failed+sum.unknown, "every planned operation ran")
}

// logMissing explains a failed wait for events: how far the group, the
// stream and the change stream got, and which acknowledged changes have no
// event.
func logMissing(t *testing.T, srv *server.Server, w *workload, grp, stored *collector) {
	t.Helper()
	gf, _, _ := grp.snapshot()
	sf, _, _ := stored.snapshot()
	t.Logf("delivered: group %d distinct events, broadcast %d", len(gf), len(sf))
	select {
	case <-grp.listener.Done():
		t.Logf("group listener stopped: %v", grp.listener.Err())
	default:
		t.Logf("group listener running")
	}
	if len(sf) > 0 {
		last := sf[len(sf)-1].ev
		t.Logf("last stored event: %s %s rev %d at %s", last.ID, last.Type, last.Revision, last.Time.Format(time.RFC3339Nano))
	}
	js, err := jetstream.New(natstest.Connect(t, srv))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{"KV_sessions", "SESSION_EVENTS"} {
		if st, err := js.Stream(ctx, name); err == nil {
			info := st.CachedInfo()
			t.Logf("stream %s: msgs %d, first seq %d, last seq %d", name, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
			if name != "SESSION_EVENTS" {
				continue
			}
			if cons, err := st.Consumer(ctx, "fault-kill"); err == nil {
				ci, err := cons.Info(ctx)
				if err == nil {
					t.Logf("group consumer: delivered %+v, ack floor %+v, ack pending %d, redelivered %d, waiting %d, pending %d",
						ci.Delivered, ci.AckFloor, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.NumPending)
				}
			}
		}
	}
	n := map[eventKey]int{}
	for _, r := range sf {
		n[eventKey{r.ev.SessionID, r.ev.Type}]++
	}
	missing := 0
	for k, ops := range w.ops {
		if n[k] < ops.acked {
			missing += ops.acked - n[k]
		}
	}
	t.Logf("acknowledged changes without an event in the stream: %d", missing)
}

// TestFault_ExpiryAcrossRestart SIGKILLs the active relay's bus right after
// sessions are created and restarts it before they expire: each session
// must be announced expired exactly once, on time, and nothing after.
func TestFault_ExpiryAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for sessions to expire")
	}
	const (
		sessions = 20
		idle     = 2 * time.Second
		// The key's TTL is whole seconds rounded up, and the server
		// expires up to 250 ms late: the key can end 1.25 s after
		// ExpiresAt. Give the relay and the group 1 s on top.
		maxLate = 2250 * time.Millisecond
		quiet   = 3 * time.Second
	)
	bin := buildBinary(t)
	srv := natstest.RunServer(t)
	args := []string{"--auth", "none", "--nats-url", srv.ClientURL(), "--data-dir", t.TempDir(), "--idle-timeout", idle.String(), "--relay-lease-ttl", "1s"}
	a := startChildBus(t, bin, "bus-a", append(args, "--service-id", "bus-a")...) // holds the relay lease
	startChildBus(t, bin, "bus-b", append(args, "--service-id", "bus-b")...)
	grp, stored := listenAll(t, srv, "fault-expiry")

	c, err := client.New(natstest.Connect(t, srv), client.WithServiceID(faultServiceID), client.WithTimeout(2*time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	expires := map[string]time.Time{}
	var first time.Time
	for i := range sessions {
		s, err := c.CreateSession(ctx, fmt.Sprintf("expiry-user-%d", i), fmt.Sprintf("expiry-token-%d", i))
		require.NoError(t, err)
		expires[s.SessionID] = s.ExpiresAt
		if first.IsZero() || s.ExpiresAt.Before(first) {
			first = s.ExpiresAt
		}
	}
	a.restart(t)
	require.True(t, time.Now().Before(first), "bus-a was back %v after the first session expired", time.Since(first))
	t.Logf("bus-a SIGKILLed and restarted %v before the first session expired", time.Until(first).Round(time.Millisecond))

	expired := func(col *collector) (got []received, other int) {
		firsts, _, _ := col.snapshot()
		for _, r := range firsts {
			switch {
			case r.ev.Type == events.SessionExpired:
				got = append(got, r)
			case r.ev.Type != events.SessionCreated:
				other++
			}
		}
		return got, other
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got, _ := expired(grp)
		assert.GreaterOrEqual(ct, len(got), sessions)
	}, time.Until(first)+maxLate+10*time.Second, 50*time.Millisecond, "every session announced expired")
	assert.Never(t, func() bool {
		got, other := expired(grp)
		return len(got) > sessions || other > 0
	}, quiet, 100*time.Millisecond, "no further events after the expiries")

	got, other := expired(grp)
	assert.Zero(t, other, "no event but created and expired")
	perSession := map[string]int{}
	var late []time.Duration
	for _, r := range got {
		perSession[r.ev.SessionID]++
		at, ok := expires[r.ev.SessionID]
		if !assert.True(t, ok, "expired event %s for a session the test did not create", r.ev.ID) {
			continue
		}
		lateness := r.at.Sub(at)
		late = append(late, lateness)
		assert.LessOrEqual(t, lateness, maxLate, "session %s announced expired %v after ExpiresAt", r.ev.SessionID, lateness)
		assert.False(t, r.ev.Time.Before(at), "session %s expired (server time %s) before ExpiresAt %s", r.ev.SessionID, r.ev.Time, at)
		assert.Empty(t, r.ev.ServiceID, "an expiry has no acting service")
	}
	for id := range expires {
		assert.Equal(t, 1, perSession[id], "session %s: expired events", id)
	}
	_, groupDups, order := grp.snapshot()
	_, storedDups, _ := stored.snapshot()
	assert.Empty(t, order, "each session's events in strictly increasing revision")
	assert.Zero(t, storedDups, "an event id stored twice in the events stream")
	if len(late) > 0 {
		slices.Sort(late)
		t.Logf("expired events: %d; arrival after ExpiresAt: min %v, median %v, p90 %v, max %v; group redeliveries %d, stored duplicates %d",
			len(late), late[0].Round(time.Millisecond), late[len(late)/2].Round(time.Millisecond),
			late[len(late)*9/10].Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond), groupDups, storedDups)
	}
}
