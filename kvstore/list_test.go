package kvstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
)

// listLogins share prefixes, raw and base64url-encoded ("ab" is YWI,
// "abc" YWJj), and hold the characters that are special in subjects.
var listLogins = []string{"a", "a.b", "a*", "a>", "a.*", "a.>", "ab", "abc", "a b", "*", ">", ".", "ä", "YQ", "a\tb"}

// TestStore_ListByLoginIsExact: a login's list holds exactly its live
// sessions, never one of a login that shares a prefix with it or matches
// it as a wildcard would, nor one deleted or refused. The batched direct
// get and the key listing it falls back to agree.
func TestStore_ListByLoginIsExact(t *testing.T) {
	t.Parallel()
	st := newTestStore(t, natstest.JetStream(t, natstest.RunServer(t)), DefaultConfig())
	require.NotNil(t, st.direct)
	ctx := natstest.Context(t)
	want := map[string][]string{}
	for i, login := range listLogins {
		for j := range i%3 + 2 {
			s := testSession(login, fmt.Sprintf("tok-%d-%d", i, j), time.Now())
			_, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
			require.NoError(t, err)
			want[login] = append(want[login], s.SessionID)
		}
		// One deleted, one refused (its token is in use).
		gone, err := st.GetSession(ctx, want[login][0])
		require.NoError(t, err)
		require.NoError(t, st.DeleteSession(ctx, gone, bus.Change{Op: bus.OpDeleted, Reason: bus.ReasonLogout}))
		want[login] = want[login][1:]
		_, err = st.CreateSession(ctx, testSession(login, fmt.Sprintf("tok-%d-1", i), time.Now()), bus.Change{Op: bus.OpCreated})
		require.ErrorIs(t, err, bus.ErrTokenInUse)
	}
	for _, login := range append(listLogins, "nobody", "a.b.c") {
		ids, err := st.SessionIDsByLogin(ctx, login)
		require.NoError(t, err)
		assert.ElementsMatch(t, want[login], ids, "login %q", login)
		listed, err := st.listKeys(ctx, login)
		require.NoError(t, err)
		assert.ElementsMatch(t, listed, ids, "login %q: both ways agree", login)
	}
}

// TestStore_ListByLoginPastOneAnswer: a login with more index keys than
// one batched direct get answers (1,024) is listed in full.
func TestStore_ListByLoginPastOneAnswer(t *testing.T) {
	t.Parallel()
	st := newTestStore(t, natstest.JetStream(t, natstest.RunServer(t)), DefaultConfig())
	ctx := natstest.Context(t)
	const n = maxDirectSubjects + 100
	want := make([]string, n)
	ws := make([]write, n)
	for i := range ws {
		want[i] = uuid.NewString()
		ws[i] = write{key: loginKey("many", want[i]), ttl: time.Minute}
	}
	_, errs := st.publishAll(ctx, ws...)
	for _, err := range errs {
		require.NoError(t, err)
	}
	_, err := st.direct.lastOf(ctx, st.subjPre+loginFilter("many"))
	require.ErrorIs(t, err, errDirectIncomplete, "the server bounds one answer")
	ids, err := st.SessionIDsByLogin(ctx, "many")
	require.NoError(t, err)
	assert.ElementsMatch(t, want, ids)
}

// TestStore_GetSessions: GetSessions returns the live sessions among the
// ids, in their order, as GetSession returns each; deleted, missing,
// expired, repeated and malformed ids are left out. Batched direct gets
// and reads one by one (replicated buckets) agree.
func TestStore_GetSessions(t *testing.T) {
	t.Parallel()
	st := newTestStore(t, natstest.JetStream(t, natstest.RunServer(t)), DefaultConfig())
	ctx := natstest.Context(t)
	var live []string
	for i := range 4 {
		s := testSession("u", fmt.Sprint("tok-", i), time.Now())
		s.Attributes["n"] = fmt.Sprint(i)
		_, err := st.CreateSession(ctx, s, bus.Change{Op: bus.OpCreated})
		require.NoError(t, err)
		live = append(live, s.SessionID)
	}
	gone, err := st.GetSession(ctx, live[1])
	require.NoError(t, err)
	require.NoError(t, st.DeleteSession(ctx, gone, bus.Change{Op: bus.OpDeleted, Reason: bus.ReasonLogout}))
	live = slices.Delete(live, 1, 2)
	// A session past its ExpiresAt whose record is still kept (recordTTL).
	ended := testSession("u", "tok-ended", time.Now())
	ended.ExpiresAt = time.Now().Add(time.Second)
	_, err = st.CreateSession(ctx, ended, bus.Change{Op: bus.OpCreated})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := st.GetSession(ctx, ended.SessionID)
		return err != nil
	}, natstest.Patience, 50*time.Millisecond)
	_, err = st.lastMsg(ctx, sessionKey(ended.SessionID))
	require.NoError(t, err, "the record is kept")

	ask := []string{live[2], gone.SessionID, uuid.NewString(), ended.SessionID, live[0], "*", ">", "a.b", live[2], live[1]}
	wantIDs := []string{live[2], live[0], live[1]}
	var want []*bus.Session
	for _, id := range wantIDs {
		s, err := st.GetSession(ctx, id)
		require.NoError(t, err)
		want = append(want, s)
	}
	direct := st.direct
	for _, name := range []string{"batched", "one by one"} {
		if name == "one by one" {
			st.direct = nil
			t.Cleanup(func() { st.direct = direct })
		}
		got, err := st.GetSessions(ctx, ask)
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
		got[0].Attributes["n"] = "changed"
		again, err := st.GetSessions(ctx, live[2:])
		require.NoError(t, err)
		assert.Equal(t, "3", again[0].Attributes["n"], "%s: returned sessions are the caller's", name)
	}
	none, err := st.GetSessions(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}
