package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestZZSource(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHG", MaxAge: time.Hour,
		Sources: []*jetstream.StreamSource{{Name: "KV_sessions", FilterSubject: "$KV.sessions.>"}}})
	require.NoError(t, err)
	s, err := e.m.CreateSession(ctx, "a", "t1")
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "k", "v"))
	}
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))
	s2, err := e.m.CreateSession(ctx, "a", "t2")
	require.NoError(t, err)
	_ = s2
	require.Eventually(t, func() bool { return false }, 3*time.Second, time.Second)
}
func TestZZSource2(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	st, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "CHG", MaxAge: time.Hour,
		Sources: []*jetstream.StreamSource{{Name: "KV_sessions", FilterSubject: "$KV.sessions.>"}}})
	require.NoError(t, err)
	_, err = e.m.CreateSession(ctx, "a", "t0")
	require.Eventually(t, func() bool { i, _ := st.Info(ctx); return i.State.Msgs > 0 }, 5*time.Second, 10*time.Millisecond)
	s, err := e.m.CreateSession(ctx, "a", "t1")
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, e.m.SetAttribute(ctx, s.SessionID, "k", "v"))
	}
	require.NoError(t, e.m.DeleteSession(ctx, s.SessionID))
	_, err = e.m.CreateSession(ctx, "a", "t2")
	require.NoError(t, err)
	time.Sleep(3500 * time.Millisecond)
	info, _ := st.Info(ctx)
	fmt.Println("state", info.State.FirstSeq, info.State.LastSeq, info.State.Msgs)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			fmt.Println(seq, err)
			continue
		}
		fmt.Println(seq, m.Time.Format("05.000"), m.Subject, m.Header)
	}
}
