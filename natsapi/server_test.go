package natsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/natstest"
	"github.com/session-bus/session-bus/kvstore"
	"github.com/session-bus/session-bus/natsapi"
)

// TestServer_RawJSON drives every method with nats.go and hand-written
// JSON only, as a service in another language would.
func TestServer_RawJSON(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	ctx := context.Background()
	st, err := kvstore.New(ctx, natstest.JetStream(t, srv), kvstore.DefaultConfig())
	require.NoError(t, err)
	runServer(t, srv, newManager(t, st))
	nc := natstest.Connect(t, srv)
	req := func(subject, body string) *nats.Msg { return request(t, nc, subject, []byte(body)) }

	// Service administration.
	reg := wantOK(t, req("sessionbus.admin.register_service.admin-svc",
		`{"service_id":"svc-a","service_name":"Service A","permissions":["session.read","session.write"],"secret":"0123456789abcdef"}`))
	assert.Equal(t, map[string]any{"service_id": "svc-a", "secret": "0123456789abcdef"}, reg)
	gen := wantOK(t, req("sessionbus.admin.register_service.admin-svc", `{"service_id":"svc-b"}`))
	assert.Len(t, gen["secret"], 43, "generated secret")
	wantErr(t, req("sessionbus.admin.register_service.admin-svc", `{"service_id":"svc-b"}`), "409", "service_exists")
	cred := wantOK(t, req("sessionbus.service.verify.svc-a", `{"service_id":"svc-a","secret":"0123456789abcdef"}`))
	assert.Equal(t, "Service A", cred["service_name"])
	assert.Equal(t, []any{"session.read", "session.write"}, cred["permissions"])
	assert.NotContains(t, cred, "secret")
	wantErr(t, req("sessionbus.service.verify.svc-a", `{"service_id":"svc-a","secret":"wrong-secret-0000"}`), "401", "unauthenticated")
	list := wantOK(t, req("sessionbus.admin.list_services.admin-svc", `{}`))
	require.Len(t, list["services"], 2)
	assert.Equal(t, "svc-a", list["services"].([]any)[0].(map[string]any)["service_id"])
	wantOK(t, req("sessionbus.admin.list_services.admin-svc", ``)) // empty body is {}
	assert.Equal(t, map[string]any{}, wantOK(t, req("sessionbus.admin.remove_service.admin-svc", `{"service_id":"svc-b"}`)))

	// Sessions.
	created := wantOK(t, req("sessionbus.write.create.svc-a", `{"login_id":"u1","token":"t1"}`))
	id, _ := created["session_id"].(string)
	require.Len(t, id, 36)
	assert.Equal(t, "u1", created["login_id"])
	assert.Equal(t, "t1", created["token"], "token only on create")
	assert.Equal(t, "svc-a", created["service_id"], "caller from the subject")
	withAttrs := wantOK(t, req("sessionbus.write.create.svc-a", `{"login_id":"u-attrs","token":"t-attrs","attributes":{"role":"admin","device":"web"}}`))
	assert.Equal(t, map[string]any{"role": "admin", "device": "web"}, withAttrs["attributes"], "first attributes in the create")
	for _, f := range []string{"create_time", "last_access", "expires_at", "revision", "attributes"} {
		assert.Contains(t, created, f)
	}
	wantErr(t, req("sessionbus.write.create.svc-a", `{"login_id":"u1","token":"t1"}`), "409", "token_in_use")

	got := wantOK(t, req("sessionbus.read.get.svc-b", fmt.Sprintf(`{"session_id":%q}`, id)))
	assert.Equal(t, id, got["session_id"])
	assert.NotContains(t, got, "token")
	byToken := wantOK(t, req("sessionbus.read.get_by_token.svc-b", `{"token":"t1"}`))
	assert.Equal(t, id, byToken["session_id"])

	assert.Equal(t, map[string]any{}, wantOK(t, req("sessionbus.write.set_attribute.svc-b",
		fmt.Sprintf(`{"session_id":%q,"key":"role","value":"admin"}`, id))))
	assert.Equal(t, map[string]any{"value": "admin", "found": true}, wantOK(t, req("sessionbus.read.get_attribute.svc-b",
		fmt.Sprintf(`{"session_id":%q,"key":"role"}`, id))))
	assert.Equal(t, map[string]any{"value": "", "found": false}, wantOK(t, req("sessionbus.read.get_attribute.svc-b",
		fmt.Sprintf(`{"session_id":%q,"key":"nope"}`, id))))

	cur := wantOK(t, req("sessionbus.read.get.svc-b", fmt.Sprintf(`{"session_id":%q}`, id)))
	rev := uint64(cur["revision"].(float64))
	upd := wantOK(t, req("sessionbus.write.update.svc-b",
		fmt.Sprintf(`{"session_id":%q,"attributes":{"role":"user","lang":"fr"},"revision":%d}`, id, rev)))
	assert.Equal(t, map[string]any{"role": "user", "lang": "fr"}, upd["attributes"])
	wantErr(t, req("sessionbus.write.update.svc-b",
		fmt.Sprintf(`{"session_id":%q,"attributes":{},"revision":%d}`, id, rev)), "409", "conflict")
	// A session as read may be sent back whole.
	upd["attributes"].(map[string]any)["lang"] = "de"
	whole, err := json.Marshal(upd)
	require.NoError(t, err)
	upd2 := wantOK(t, req("sessionbus.write.update.svc-b", string(whole)))
	assert.Equal(t, "de", upd2["attributes"].(map[string]any)["lang"])

	ref := wantOK(t, req("sessionbus.write.refresh.svc-b", fmt.Sprintf(`{"session_id":%q}`, id)))
	assert.Equal(t, id, ref["session_id"])
	assert.Equal(t, map[string]any{}, wantOK(t, req("sessionbus.write.remove_attribute.svc-b",
		fmt.Sprintf(`{"session_id":%q,"key":"lang"}`, id))))

	wantOK(t, req("sessionbus.write.create.svc-a", `{"login_id":"u1","token":"t2"}`))
	wantOK(t, req("sessionbus.write.create.svc-a", `{"login_id":"u2","token":"t3"}`))
	byLogin := wantOK(t, req("sessionbus.read.list_by_login.svc-b", `{"login_id":"u1"}`))
	require.Len(t, byLogin["sessions"], 2)
	assert.Equal(t, id, byLogin["sessions"].([]any)[0].(map[string]any)["session_id"], "oldest first")
	assert.Equal(t, map[string]any{"sessions": []any{}}, wantOK(t, req("sessionbus.read.list_by_login.svc-b", `{"login_id":"nobody"}`)))

	assert.Equal(t, map[string]any{}, wantOK(t, req("sessionbus.write.delete_by_token.svc-b", `{"token":"t1"}`)))
	wantErr(t, req("sessionbus.read.get.svc-b", fmt.Sprintf(`{"session_id":%q}`, id)), "404", "not_found")
	wantErr(t, req("sessionbus.read.get_by_token.svc-b", `{"token":"t1"}`), "404", "not_found")
	assert.Equal(t, map[string]any{}, wantOK(t, req("sessionbus.write.delete.svc-b", fmt.Sprintf(`{"session_id":%q}`, id))), "deleting twice is fine")

	assert.Equal(t, map[string]any{"deleted": 1.0}, wantOK(t, req("sessionbus.write.delete_all.svc-b", `{"login_id":"u1"}`)))
	assert.Equal(t, map[string]any{"deleted": 0.0}, wantOK(t, req("sessionbus.write.delete_all.svc-b", `{"login_id":"u1"}`)))
	require.Len(t, wantOK(t, req("sessionbus.read.list_by_login.svc-b", `{"login_id":"u2"}`))["sessions"], 1)
}

// TestServer_BadInput sends what a careless or hostile caller might and
// checks each gets a stable 4xx, changes nothing, and leaves the
// connection usable.
func TestServer_BadInput(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	m := newManager(t, bus.NewMemoryStore())
	runServer(t, srv, m)
	nc := natstest.Connect(t, srv)
	ctx := context.Background()
	s, err := m.CreateSession(ctx, "u1", "t1")
	require.NoError(t, err)
	require.NoError(t, m.SetAttribute(ctx, s.SessionID, "k", "v"))
	id := s.SessionID

	state := func() string {
		list, err := m.SessionsByLogin(ctx, "u1")
		require.NoError(t, err)
		all, err := m.SessionsByLogin(ctx, "*")
		require.NoError(t, err)
		svcs, err := m.ListServices(ctx)
		require.NoError(t, err)
		b, err := json.Marshal([]any{list, all, svcs})
		require.NoError(t, err)
		return string(b)
	}
	cur, err := m.GetSession(ctx, id)
	require.NoError(t, err)
	rev := strconv.FormatUint(cur.Revision, 10)
	before := state()
	bigLogin := strings.Repeat("x", 5*1024)
	bigValue := strings.Repeat("v", 900*1024)

	tests := []struct {
		name       string
		giveSubj   string
		giveBody   string
		wantStatus string
		wantCode   string
	}{
		{"malformed JSON", subj(bus.MethodGet, "c"), `{"session_id":`, "400", "invalid_input"},
		{"garbage", subj(bus.MethodGet, "c"), `hello`, "400", "invalid_input"},
		{"array", subj(bus.MethodCreate, "c"), `[{"login_id":"u1","token":"x"}]`, "400", "invalid_input"},
		{"number", subj(bus.MethodCreate, "c"), `42`, "400", "invalid_input"},
		{"null", subj(bus.MethodCreate, "c"), `null`, "400", "invalid_input"},
		{"string", subj(bus.MethodGet, "c"), `"` + id + `"`, "400", "invalid_input"},
		{"two objects", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x"} {}`, "400", "invalid_input"},
		{"trailing garbage", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x"}]`, "400", "invalid_input"},
		{"unknown operation", "sessionbus.read.frobnicate.c", `{}`, "400", "unknown_operation"},
		{"operation in wrong class", "sessionbus.read.create.c", `{"login_id":"u1","token":"x"}`, "400", "unknown_operation"},
		{"admin op in write class", "sessionbus.write.register_service.c", `{"service_id":"x"}`, "400", "unknown_operation"},
		{"bad caller", "sessionbus.read.get.c$x", `{"session_id":"` + id + `"}`, "400", "invalid_input"},
		{"missing field", subj(bus.MethodGet, "c"), `{}`, "400", "invalid_input"},
		{"empty body", subj(bus.MethodCreate, "c"), ``, "400", "invalid_input"},
		{"null field", subj(bus.MethodSetAttribute, "c"), `{"session_id":"` + id + `","key":"k","value":null}`, "400", "invalid_input"},
		{"missing value", subj(bus.MethodSetAttribute, "c"), `{"session_id":"` + id + `","key":"k"}`, "400", "invalid_input"},
		{"mistyped id", subj(bus.MethodGet, "c"), `{"session_id":42}`, "400", "invalid_input"},
		{"mistyped value", subj(bus.MethodSetAttribute, "c"), `{"session_id":"` + id + `","key":"k","value":7}`, "400", "invalid_input"},
		{"mistyped attributes", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{"k":1},"revision":1}`, "400", "invalid_input"},
		{"negative revision", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{},"revision":-1}`, "400", "invalid_input"},
		{"update attribute null", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{"k":null},"revision":` + rev + `}`, "400", "invalid_input"},
		{"update without attributes", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","revision":1}`, "400", "invalid_input"},
		{"update bad time", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{},"revision":1,"create_time":"yesterday"}`, "400", "invalid_input"},
		{"mistyped permissions", subj(bus.MethodRegisterService, "c"), `{"service_id":"svc-x","permissions":"all"}`, "400", "invalid_input"},
		{"unknown permission", subj(bus.MethodRegisterService, "c"), `{"service_id":"svc-x","permissions":["session.read","session.reed"]}`, "400", "invalid_input"},
		{"mistyped create attributes", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":{"k":1}}`, "400", "invalid_input"},
		{"create attributes as a list", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":["k"]}`, "400", "invalid_input"},
		{"create attribute null", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":{"k":null}}`, "400", "invalid_input"},
		{"create attribute empty key", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":{"":"v"}}`, "400", "invalid_input"},
		{"create attribute key twice", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":{"k":"a","k":"b"}}`, "400", "invalid_input"},
		{"900 KB create attribute", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","attributes":{"k":"` + bigValue + `"}}`, "413", "too_large"},
		{"unknown field", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","service_id":"evil"}`, "400", "invalid_input"},
		{"invalid UTF-8", subj(bus.MethodCreate, "c"), "{\"login_id\":\"u\xff\",\"token\":\"x\"}", "400", "invalid_input"},
		{"invalid UTF-8 in key", subj(bus.MethodSetAttribute, "c"), "{\"session_id\":\"" + id + "\",\"key\":\"\xc3\",\"value\":\"v\"}", "400", "invalid_input"},
		{"wildcard session id", subj(bus.MethodGet, "c"), `{"session_id":"a.*"}`, "400", "invalid_input"},
		{"star session id", subj(bus.MethodSetAttribute, "c"), `{"session_id":"*","key":"k","value":"x"}`, "400", "invalid_input"},
		{"gt session id", subj(bus.MethodDelete, "c"), `{"session_id":">"}`, "400", "invalid_input"},
		{"dotted session id", subj(bus.MethodRefresh, "c"), `{"session_id":"` + id[:8] + `.` + id[9:] + `"}`, "400", "invalid_input"},
		{"wildcard service id", subj(bus.MethodRegisterService, "c"), `{"service_id":"svc.*"}`, "400", "invalid_input"},
		{"empty token", subj(bus.MethodGetByToken, "c"), `{"token":""}`, "400", "invalid_input"},
		{"short secret", subj(bus.MethodRegisterService, "c"), `{"service_id":"svc-x","secret":"short"}`, "400", "invalid_input"},
		{"5 KB login id", subj(bus.MethodCreate, "c"), `{"login_id":"` + bigLogin + `","token":"x"}`, "413", "too_large"},
		{"5 KB login id list", subj(bus.MethodListByLogin, "c"), `{"login_id":"` + bigLogin + `"}`, "413", "too_large"},
		{"900 KB attribute", subj(bus.MethodSetAttribute, "c"), `{"session_id":"` + id + `","key":"k","value":"` + bigValue + `"}`, "413", "too_large"},
		{"unknown session", subj(bus.MethodSetAttribute, "c"), `{"session_id":"00000000-0000-4000-8000-000000000000","key":"k","value":"x"}`, "404", "not_found"},
		{"stale update", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{},"revision":1}`, "409", "conflict"},
		{"update at revision 0", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{},"revision":0}`, "409", "conflict"},
		{"update without revision", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{}}`, "400", "invalid_input"},
		{"field twice", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","login_id":"u2"}`, "400", "invalid_input"},
		{"field twice in another case", subj(bus.MethodCreate, "c"), `{"login_id":"u1","token":"x","LOGIN_ID":"u2"}`, "400", "invalid_input"},
		{"attribute key twice", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{"k":"a","k":"b"},"revision":` + rev + `}`, "400", "invalid_input"},
		{"lone high surrogate", subj(bus.MethodCreate, "c"), `{"login_id":"u\ud800","token":"x"}`, "400", "invalid_input"},
		{"lone low surrogate", subj(bus.MethodGetByToken, "c"), `{"token":"t\udc00"}`, "400", "invalid_input"},
		{"lone surrogate in attribute key", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{"k\ud800":"v"},"revision":` + rev + `}`, "400", "invalid_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, request(t, nc, tt.giveSubj, []byte(tt.giveBody)), tt.wantStatus, tt.wantCode)
			assert.Equal(t, before, state(), "state changed")
			got := wantOK(t, request(t, nc, subj(bus.MethodGetAttribute, "c"), []byte(`{"session_id":"`+id+`","key":"k"}`)))
			assert.Equal(t, "v", got["value"], "an ordinary call after it")
		})
	}

	t.Run("wildcard login id is a plain id", func(t *testing.T) {
		for _, login := range []string{"*", ">", "u1.>", "u*"} {
			got := wantOK(t, request(t, nc, subj(bus.MethodListByLogin, "c"), []byte(`{"login_id":"`+login+`"}`)))
			assert.Empty(t, got["sessions"], "login %q", login)
		}
	})
}

func TestServer_RequestSizeLimit(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	runServer(t, srv, newManager(t, bus.NewMemoryStore()), natsapi.WithMaxRequestBytes(1024))
	nc := natstest.Connect(t, srv)
	body := `{"login_id":"u1","token":"` + strings.Repeat("t", 2000) + `"}`
	wantErr(t, request(t, nc, subj(bus.MethodCreate, "c"), []byte(body)), "413", "too_large")
	wantOK(t, request(t, nc, subj(bus.MethodCreate, "c"), []byte(`{"login_id":"u1","token":"t"}`)))
}

func TestServer_InternalErrorsCarryNoDetail(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	runServer(t, srv, newManager(t, failingStore{bus.NewMemoryStore()}))
	nc := natstest.Connect(t, srv)
	msg := request(t, nc, subj(bus.MethodCreate, "c"), []byte(`{"login_id":"u1","token":"t"}`))
	wantErr(t, msg, "500", "internal")
	assert.NotContains(t, string(msg.Data), "disk on fire")
	assert.NotContains(t, msg.Header.Get("Nats-Service-Error"), "disk on fire")
}

type failingStore struct{ bus.Store }

func (failingStore) CreateSession(context.Context, *bus.Session, bus.Change) (uint64, error) {
	return 0, errors.New("disk on fire at /var/secret/path")
}

// TestServer_QueueGroup runs two instances; stopping one fails nothing.
func TestServer_QueueGroup(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	st := bus.NewMemoryStore()
	a := runServer(t, srv, newManager(t, st))
	b := runServer(t, srv, newManager(t, st))
	nc := natstest.Connect(t, srv)
	created := wantOK(t, request(t, nc, subj(bus.MethodCreate, "c"), []byte(`{"login_id":"u1","token":"t1"}`)))
	get := []byte(fmt.Sprintf(`{"session_id":%q}`, created["session_id"]))

	served := func(s *natsapi.Server) int {
		n := 0
		for _, e := range s.Stats().Endpoints {
			n += e.NumRequests
		}
		return n
	}
	for i := 0; served(a) == 0 || served(b) == 0; i++ {
		require.Less(t, i, 1000, "requests were not spread over the queue group")
		wantOK(t, request(t, nc, subj(bus.MethodGet, "c"), get))
	}

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				msg, err := nc.Request(subj(bus.MethodGet, "c"), get, 5*time.Second)
				if err == nil && msg.Header.Get("Nats-Service-Error-Code") != "" {
					err = fmt.Errorf("error reply %s", msg.Data)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	require.NoError(t, a.Close())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	before := served(b)
	for range 20 {
		wantOK(t, request(t, nc, subj(bus.MethodGet, "c"), get))
	}
	assert.Equal(t, before+20, served(b), "the survivor serves everything")
}

// TestServer_CloseDrains closes a server while requests are held in the
// store: they are answered, new ones are not taken, and Close waits.
func TestServer_CloseDrains(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	gs := newGateStore()
	m := newManager(t, gs)
	svc, err := natsapi.New(natstest.Connect(t, srv), m, natsapi.WithLogger(quiet))
	require.NoError(t, err)
	nc := natstest.Connect(t, srv)
	s, err := m.CreateSession(context.Background(), "u1", "t1")
	require.NoError(t, err)
	get := []byte(fmt.Sprintf(`{"session_id":%q}`, s.SessionID))

	gs.armed.Store(true)
	const n = 5
	replies := make(chan *nats.Msg, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			msg, err := nc.Request(subj(bus.MethodGet, "c"), get, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			replies <- msg
		})
	}
	gs.waitEntered(t, n)

	closed := make(chan error, 1)
	go func() { closed <- svc.Close() }()
	require.Eventually(t, func() bool {
		_, err := nc.Request(subj(bus.MethodGet, "c"), get, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	}, 5*time.Second, 10*time.Millisecond, "Close did not stop taking requests")
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with requests in flight", err)
	default:
	}

	close(gs.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error("request lost:", err)
	}
	require.Len(t, replies, n)
	for range n {
		wantOK(t, <-replies)
	}
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	require.NoError(t, svc.Close(), "second Close")
}

// TestServer_Overload refuses what is beyond max-in-flight at once.
func TestServer_Overload(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	gs := newGateStore()
	m := newManager(t, gs)
	svc := runServer(t, srv, m, natsapi.WithMaxInFlight(1))
	nc := natstest.Connect(t, srv)
	s, err := m.CreateSession(context.Background(), "u1", "t1")
	require.NoError(t, err)
	get := []byte(fmt.Sprintf(`{"session_id":%q}`, s.SessionID))

	gs.armed.Store(true)
	first := make(chan *nats.Msg, 1)
	go func() {
		msg, err := nc.Request(subj(bus.MethodGet, "c"), get, 10*time.Second)
		assert.NoError(t, err)
		first <- msg
	}()
	gs.waitEntered(t, 1)

	// Refused at once: a queued request would wait for the gate and time out.
	for range 10 {
		wantErr(t, request(t, nc, subj(bus.MethodGet, "c"), get), "503", "unavailable")
	}
	close(gs.gate)
	wantOK(t, <-first)

	var rejected uint64
	for _, e := range svc.Stats().Endpoints {
		var d natsapi.EndpointStats
		require.NoError(t, json.Unmarshal(e.Data, &d))
		rejected += d.Rejected
	}
	assert.Equal(t, uint64(10), rejected)
}

// TestServer_PerCallerShare: one caller's burst takes at most its share
// of max-in-flight (half by default); another caller's request is still
// admitted while the first caller is refused.
func TestServer_PerCallerShare(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	gs := newGateStore()
	m := newManager(t, gs)
	runServer(t, srv, m, natsapi.WithMaxInFlight(4))
	nc := natstest.Connect(t, srv)
	s, err := m.CreateSession(context.Background(), "u1", "t1")
	require.NoError(t, err)
	get := []byte(fmt.Sprintf(`{"session_id":%q}`, s.SessionID))

	gs.armed.Store(true)
	replies := make(chan *nats.Msg, 3)
	ask := func(caller string) {
		go func() {
			msg, err := nc.Request(subj(bus.MethodGet, caller), get, natstest.Patience)
			assert.NoError(t, err)
			replies <- msg
		}()
	}
	ask("burst")
	ask("burst")
	gs.waitEntered(t, 2)
	msg := request(t, nc, subj(bus.MethodGet, "burst"), get)
	wantErr(t, msg, "503", "unavailable")
	assert.Contains(t, string(msg.Data), "for this caller")
	ask("other")
	gs.waitEntered(t, 1) // admitted beside the burst
	close(gs.gate)
	for range 3 {
		wantOK(t, <-replies)
	}
}

func TestServer_Info(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	svc := runServer(t, srv, newManager(t, bus.NewMemoryStore()))
	info := svc.Info()
	assert.Equal(t, natsapi.Name, info.Name)
	assert.Equal(t, natsapi.Version, info.Version)
	subjects := map[string]string{}
	for _, e := range info.Endpoints {
		subjects[e.Name] = e.Subject
	}
	assert.Equal(t, map[string]string{
		"read":    "sessionbus.read.*.*",
		"write":   "sessionbus.write.*.*",
		"service": "sessionbus.service.*.*",
		"admin":   "sessionbus.admin.*.*",
	}, subjects)
}

func TestNew_InvalidConfig(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	m := newManager(t, bus.NewMemoryStore())
	for _, opt := range []natsapi.Option{natsapi.WithMaxInFlight(0), natsapi.WithMaxInFlightPerCaller(0), natsapi.WithMaxRequestBytes(0),
		natsapi.WithRequestTimeout(0), natsapi.WithLogger(nil)} {
		_, err := natsapi.New(nc, m, opt)
		require.ErrorIs(t, err, bus.ErrInvalidConfig)
	}
	_, err := natsapi.New(nil, m)
	require.ErrorIs(t, err, bus.ErrInvalidConfig)
}

// TestServer_ErrorMessages checks that error replies read as sentences:
// no Go package prefixes, no store keys, the detail kept.
func TestServer_ErrorMessages(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	ctx := context.Background()
	st, err := kvstore.New(ctx, natstest.JetStream(t, srv), kvstore.DefaultConfig())
	require.NoError(t, err)
	m := newManager(t, st)
	runServer(t, srv, m)
	nc := natstest.Connect(t, srv)
	s, err := m.CreateSession(ctx, "u1", "t1")
	require.NoError(t, err)
	id := s.SessionID

	tests := []struct {
		name     string
		giveSubj string
		giveBody string
		wantCode string
		wantMsg  string
	}{
		{"not found", subj(bus.MethodGet, "c"), `{"session_id":"00000000-0000-4000-8000-000000000000"}`, "not_found", "session not found"},
		{"missing field", subj(bus.MethodGet, "c"), `{}`, "invalid_input", `invalid input: field "session_id" is required`},
		{"unknown field", subj(bus.MethodGet, "c"), `{"session_id":"` + id + `","x":1}`, "invalid_input", `invalid input: unknown field "x"`},
		{"bad caller", "sessionbus.read.get.c$x", `{"session_id":"` + id + `"}`, "invalid_input",
			"invalid input: service_id may hold only letters, digits, '-' and '_' (the caller token of the subject)"},
		{"token in use", subj(bus.MethodCreate, "c"), `{"login_id":"u2","token":"t1"}`, "token_in_use", "token already in use"},
		{"stale update", subj(bus.MethodUpdate, "c"), `{"session_id":"` + id + `","attributes":{},"revision":1000}`, "conflict", "conflict: session changed since revision 1000"},
		{"unknown operation", "sessionbus.read.frobnicate.c", `{}`, "unknown_operation", `unknown operation: no method "frobnicate" in class "read"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := request(t, nc, tt.giveSubj, []byte(tt.giveBody))
			var body bus.ErrorReply
			require.NoError(t, json.Unmarshal(msg.Data, &body), "body %s", msg.Data)
			assert.Equal(t, tt.wantCode, body.Error.Code)
			assert.Equal(t, tt.wantMsg, body.Error.Message)
			assert.Equal(t, tt.wantMsg, msg.Header.Get("Nats-Service-Error"))
		})
	}
}

// TestServer_VerifyRateLimitPerCaller: a service that keeps failing to
// verify admin is refused, and another service verifies admin at once.
func TestServer_VerifyRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	m := newManager(t, bus.NewMemoryStore())
	runServer(t, srv, m)
	nc := natstest.Connect(t, srv)
	secret, err := m.RegisterService(context.Background(), bus.ServiceCredential{ServiceID: "admin", Permissions: bus.AllPermissions}, "")
	require.NoError(t, err)
	wrong := []byte(`{"service_id":"admin","secret":"wrong-secret-wrong-secret"}`)
	right := []byte(fmt.Sprintf(`{"service_id":"admin","secret":%q}`, secret))

	for range 5 {
		wantErr(t, request(t, nc, subj(bus.MethodVerify, "svc-a"), wrong), "401", "unauthenticated")
	}
	wantErr(t, request(t, nc, subj(bus.MethodVerify, "svc-a"), right), "429", "rate_limited")
	cred := wantOK(t, request(t, nc, subj(bus.MethodVerify, "svc-b"), right))
	assert.Equal(t, "admin", cred["service_id"])
	_, err = m.VerifyService(bus.ContextWithRemote(context.Background(), "10.0.0.7"), "admin", secret)
	require.NoError(t, err, "a login of admin is not locked out")
}

// TestServer_RefusesBusOwnedReplySubjects: a caller cannot have the bus
// publish its reply on a subject the bus owns (change notices, events,
// audit) or a system subject: NATS does not check reply subjects against
// the requester's permissions, so in callout mode this is the only guard.
// Such requests are dropped and counted; a normal inbox still gets its reply.
func TestServer_RefusesBusOwnedReplySubjects(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	m := newManager(t, bus.NewMemoryStore())
	svc := runServer(t, srv, m)
	nc := natstest.Connect(t, srv)
	s, err := m.CreateSession(context.Background(), "u", "t")
	require.NoError(t, err)
	body := []byte(`{"session_id":"` + s.SessionID + `"}`)
	replies := []string{bus.CacheSubject, "session.deleted." + s.SessionID, "sessionaudit.accessed.x", "$JS.API.STREAM.PURGE.KV_sessions", "sessionbus.read.get.other"}
	for _, reply := range replies {
		require.NoError(t, nc.PublishRequest(subj(bus.MethodGet, "c"), reply, body))
	}
	wantOK(t, request(t, nc, subj(bus.MethodGet, "c"), body)) // after the others: they were handled first
	var rejected uint64
	for _, e := range svc.Stats().Endpoints {
		var d natsapi.EndpointStats
		require.NoError(t, json.Unmarshal(e.Data, &d))
		rejected += d.Rejected
	}
	assert.Equal(t, uint64(len(replies)), rejected)
}
