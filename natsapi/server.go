package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/textutil"
)

// Name is the name the server registers with NATS micro: what
// `nats micro ls` lists.
const Name = "session-bus"

// Version is the SemVer version of the wire protocol the server serves,
// reported by `nats micro info`.
const Version = "0.4.0"

// Server serves a [bus.Manager] over NATS request-reply as the micro
// service [Name], with one endpoint per bus.Class on
// "sessionbus.<class>.*.*". The method is the subject's third token and
// the acting service its last: the server takes the caller from the
// subject only, which the NATS server's permissions can pin, never from
// the payload.
//
// Every instance on a NATS system joins the same queue group, so requests
// spread over them. Each request runs in its own goroutine, at most
// [WithMaxInFlight] at once; past that a request is refused at once with
// 503 "unavailable" rather than queued. Create one with [New]; stop it
// with [Server.Close].
type Server struct {
	nc  *nats.Conn
	m   *bus.Manager
	o   options
	log *slog.Logger
	svc micro.Service

	sem   chan struct{}
	stats map[bus.Class]*endpointStats

	mu       sync.RWMutex
	finished bool // set by Close: no request starts after it
	callers  callerSlots
	wg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts serving m on nc. It fails with bus.ErrInvalidConfig on bad
// arguments or options, or with the NATS error when subscribing fails.
func New(nc *nats.Conn, m *bus.Manager, opts ...Option) (*Server, error) {
	if nc == nil || m == nil {
		return nil, fmt.Errorf("%w: nil connection or manager", bus.ErrInvalidConfig)
	}
	o := options{
		maxInFlight:     DefaultMaxInFlight,
		maxRequestBytes: DefaultMaxRequestBytes,
		requestTimeout:  bus.DefaultRequestTimeout,
		logger:          slog.Default(),
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.maxPerCaller == 0 {
		o.maxPerCaller = max(o.maxInFlight/2, 1)
	}
	s := &Server{
		nc:    nc,
		m:     m,
		o:     o,
		log:   o.logger.With("component", "bus-service"),
		sem:   make(chan struct{}, o.maxInFlight),
		stats: make(map[bus.Class]*endpointStats, len(bus.Classes)),
	}
	for _, c := range bus.Classes {
		s.stats[c] = &endpointStats{}
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         Name,
		Version:      Version,
		Description:  "session-bus: shared user sessions over NATS",
		StatsHandler: s.statsData,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Warn("nats error", keySubject, e.Subject, keyErr, e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("natsapi: add micro service: %w", err)
	}
	s.svc = svc
	for _, c := range bus.Classes {
		err := svc.AddEndpoint(string(c), s.handler(c),
			micro.WithEndpointSubject(bus.ClassSubject(c)),
			micro.WithEndpointMetadata(map[string]string{"methods": strings.Join(methodsOf(c), ",")}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("natsapi: add endpoint %q: %w", c, err)
		}
	}
	// Make sure the server has the subscriptions before callers are told
	// the service is up: otherwise their first requests can meet no
	// responders.
	if err := nc.FlushTimeout(o.requestTimeout); err != nil {
		s.log.Warn("flush of subscriptions failed", keyErr, err)
	}
	s.log.Info("service started", "id", svc.Info().ID, "version", Version, "max_in_flight", o.maxInFlight)
	return s, nil
}

// methodsOf lists the methods the endpoint of class c serves, sorted.
func methodsOf(c bus.Class) []string {
	var methods []string
	for m := range ops {
		if mc, _ := bus.ClassOf(m); mc == c {
			methods = append(methods, string(m))
		}
	}
	slices.Sort(methods)
	return methods
}

// Info returns the micro service's identity and endpoints.
func (s *Server) Info() micro.Info { return s.svc.Info() }

// Stats returns the micro service's statistics; each endpoint's Data is an
// [EndpointStats].
func (s *Server) Stats() micro.Stats { return s.svc.Stats() }

// busOwned reports whether a reply subject is one the bus publishes on
// for everyone (change notices, core events) or a system subject: a
// caller that names one would have the bus publish its reply there. NATS
// does not check reply subjects against the sender's permissions, so
// without accounts (callout mode) this is the only guard.
func busOwned(reply string) bool {
	for _, p := range busOwnedPrefixes {
		if strings.HasPrefix(reply, p) {
			return true
		}
	}
	return reply == bus.SubjectPrefix
}

// busOwnedPrefixes are the subjects busOwned refuses as replies.
var busOwnedPrefixes = []string{bus.SubjectPrefix + ".", "session.", "sessionaudit.", "$"}

// handler is the micro handler of class c. micro calls it for one request
// at a time, so it only admits the request and hands it to a goroutine.
func (s *Server) handler(c bus.Class) micro.HandlerFunc {
	st := s.stats[c]
	return func(req micro.Request) {
		if s.o.callers != nil && !strings.HasPrefix(req.Reply(), MappedReplyPrefix) || busOwned(req.Reply()) {
			st.rejected.Add(1) // counted, not logged: a log line per request is a flood
			return
		}
		s.mu.RLock()
		if s.finished {
			s.mu.RUnlock()
			s.refuse(req, st, "service is stopping")
			return
		}
		_, _, caller, _ := bus.ParseSubject(req.Subject()) // a bad subject is answered by serve
		if !s.callers.acquire(caller, s.o.maxPerCaller) {
			s.mu.RUnlock()
			s.refuse(req, st, "too many requests in flight for this caller")
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.callers.release(caller)
			s.mu.RUnlock()
			s.refuse(req, st, "too many requests in flight")
			return
		}
		s.wg.Add(1)
		s.mu.RUnlock()
		st.inFlight.Add(1)
		go func() {
			defer func() {
				st.inFlight.Add(-1)
				<-s.sem
				s.callers.release(caller)
				s.wg.Done()
			}()
			s.serve(c, req, st)
		}()
	}
}

// refuse answers 503 at once, from micro's handler goroutine, so micro
// counts it in num_errors. why completes "unavailable: ...".
func (s *Server) refuse(req micro.Request, st *endpointStats, why string) {
	st.rejected.Add(1)
	if req.Reply() == "" {
		return
	}
	code := bus.CodeOf(bus.ErrUnavailable)
	msg := bus.ErrorMessage(fmt.Errorf("%w: %s", bus.ErrUnavailable, why))
	body, _ := json.Marshal(bus.ErrorReply{Error: bus.ErrorBody{Code: code.Name, Message: msg}})
	if err := req.Error(strconv.Itoa(code.Status), msg, body); err != nil {
		s.log.Warn("reply failed", keySubject, req.Subject(), keyErr, err)
	}
}

// serve handles one admitted request and publishes its reply. It replies
// with nc.PublishMsg rather than req.Respond: micro reads the request's
// state after the handler returns, which this goroutine must not race.
func (s *Server) serve(c bus.Class, req micro.Request, st *endpointStats) {
	start := time.Now()
	method, caller, reply, err := s.run(c, req)
	var msg *nats.Msg
	if err != nil {
		msg = s.errorMsg(err)
		st.errors.Add(1)
	} else {
		data, merr := json.Marshal(reply)
		if merr != nil {
			s.log.Error("marshal reply failed", keyMethod, method, keyErr, merr)
			msg = s.errorMsg(bus.ErrInternal)
			st.errors.Add(1)
		} else {
			msg = &nats.Msg{Data: data}
		}
	}
	took := time.Since(start)
	st.served.Add(1)
	st.procNanos.Add(int64(took))
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		status := 200
		if err != nil {
			status = bus.CodeOf(err).Status
		}
		s.log.Debug("request", keyMethod, method, keyServiceID, caller, keyStatus, status, keyDuration, took)
	}
	if req.Reply() == "" {
		return
	}
	msg.Subject = req.Reply()
	if perr := s.nc.PublishMsg(msg); perr != nil {
		s.log.Warn("reply failed", keyMethod, method, keyErr, perr)
	}
}

// run parses the subject, checks the caller and the body size, and calls
// the method with the caller in the context.
func (s *Server) run(c bus.Class, req micro.Request) (bus.Method, string, any, error) {
	class, method, caller, ok := bus.ParseSubject(req.Subject())
	if !ok || class != c {
		return method, caller, nil, fmt.Errorf("%w: subject must be %s.<class>.<method>.<caller>", bus.ErrUnknownOperation, bus.SubjectPrefix)
	}
	mc, known := bus.ClassOf(method)
	serve, served := ops[method]
	if !known || !served || mc != c {
		return method, caller, nil, fmt.Errorf("%w: no method %q in class %q", bus.ErrUnknownOperation, textutil.Truncate(string(method), 64), c)
	}
	if s.o.callers != nil {
		id, ok := s.o.callers.ServiceOf(caller)
		if !ok {
			return method, "", nil, fmt.Errorf("%w: the requesting account belongs to no registered service", bus.ErrUnauthenticated)
		}
		caller = id
	}
	if err := bus.ValidateServiceID(caller); err != nil {
		return method, caller, nil, fmt.Errorf("%w (the caller token of the subject)", err)
	}
	if n := len(req.Data()); n > s.o.maxRequestBytes {
		return method, caller, nil, fmt.Errorf("%w: request body is %d bytes, limit %d", bus.ErrTooLarge, n, s.o.maxRequestBytes)
	}
	ctx, cancel := context.WithTimeout(bus.ContextWithService(context.Background(), caller), s.o.requestTimeout)
	defer cancel()
	reply, err := serve(ctx, s.m, req.Data())
	if err != nil {
		return method, caller, nil, err
	}
	if sess, ok := reply.(*bus.Session); ok && sess.Attributes == nil {
		sess.Attributes = map[string]string{}
	}
	return method, caller, reply, nil
}

// errorMsg builds an error reply: status and message (see bus.ErrorMessage)
// in the micro error headers, and {"error":{"code","message"}} in the
// body. Internal errors carry no detail; they are logged here.
func (s *Server) errorMsg(err error) *nats.Msg {
	code := bus.CodeOf(err)
	if code.Status >= 500 && !errors.Is(err, bus.ErrUnavailable) {
		s.log.Error("request failed", keyCode, code.Name, keyErr, err)
		code = bus.CodeOf(bus.ErrInternal)
	}
	msg := headerSafe(bus.ErrorMessage(err))
	body, _ := json.Marshal(bus.ErrorReply{Error: bus.ErrorBody{Code: code.Name, Message: msg}})
	return &nats.Msg{
		Header: nats.Header{
			micro.ErrorCodeHeader: []string{strconv.Itoa(code.Status)},
			micro.ErrorHeader:     []string{msg},
		},
		Data: body,
	}
}

// headerSafe keeps a message to one printable line of bounded length, as a
// header value must be.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return textutil.Truncate(s, 512)
}

// Close stops taking requests and returns once every request the server
// took has been answered. It drains the endpoint subscriptions: requests
// the NATS server delivered before the unsubscribe are still served, and
// new ones go to the other instances of the queue group (or get no
// responders when none is left). Close may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.svc.Stop()
		s.awaitDelivered()
		s.mu.Lock()
		s.finished = true
		s.mu.Unlock()
		s.wg.Wait()
		s.log.Info("service stopped")
	})
	return s.closeErr
}

// awaitDelivered waits until the drained subscriptions have handed every
// message they hold to the handlers. micro's Stop only starts the drain:
// a flush makes sure the NATS server has seen the unsubscribe and sent all
// it will, and a barrier runs once every subscription of the connection
// has passed the messages queued before it. It gives up after the request
// timeout (a slow callback of another subscription on nc); requests that
// arrive later are refused with 503.
func (s *Server) awaitDelivered() {
	if s.nc.IsClosed() {
		return
	}
	if err := s.nc.FlushTimeout(s.o.requestTimeout); err != nil {
		s.log.Warn("flush on close failed", keyErr, err)
		return
	}
	done := make(chan struct{})
	if err := s.nc.Barrier(func() { close(done) }); err != nil {
		return
	}
	t := time.NewTimer(s.o.requestTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("close did not see all deliveries in time")
	}
}
