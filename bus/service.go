package bus

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
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServiceName is the name the bus registers with NATS micro: what
// `nats micro ls` lists.
const ServiceName = "session-bus"

// ServiceVersion is the SemVer version of the wire protocol the service
// serves, reported by `nats micro info`.
const ServiceVersion = "0.4.0"

// Service defaults, set here and only here.
const (
	// DefaultMaxInFlight bounds the requests one Service handles at once.
	DefaultMaxInFlight = 256
	// DefaultMaxRequestBytes bounds a request body: 1 MiB, the NATS
	// server's default max_payload.
	DefaultMaxRequestBytes = 1 << 20
)

// Service serves a [Manager] over NATS request-reply as the micro service
// [ServiceName], with one endpoint per [Class] on "sessionbus.<class>.*.*".
// The method is the subject's third token and the acting service its last:
// the bus takes the caller from the subject only, which the NATS server's
// permissions can pin, never from the payload.
//
// Every instance on a NATS system joins the same queue group, so requests
// spread over them. Each request runs in its own goroutine, at most
// [WithMaxInFlight] at once; past that a request is refused at once with
// 503 "unavailable" rather than queued. Create one with [NewService]; stop
// it with [Service.Close].
type Service struct {
	nc  *nats.Conn
	m   *Manager
	o   serviceOptions
	log *slog.Logger
	svc micro.Service

	sem   chan struct{}
	stats map[Class]*endpointStats

	mu       sync.RWMutex
	finished bool // set by Close: no request starts after it
	callers  callerSlots
	wg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

type serviceOptions struct {
	maxInFlight     int
	maxPerCaller    int // 0: half of maxInFlight
	maxRequestBytes int
	requestTimeout  time.Duration
	logger          *slog.Logger
	callers         Callers // nil: the subject's caller token is the service id
}

// ServiceOption configures a [Service].
type ServiceOption func(*serviceOptions) error

// WithMaxInFlight bounds the requests handled at once; more are refused
// with 503. Default [DefaultMaxInFlight].
func WithMaxInFlight(n int) ServiceOption {
	return func(o *serviceOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight must be at least 1", ErrInvalidConfig)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithMaxInFlightPerCaller bounds the requests of one caller (the service
// named by the subject) handled at once, so one service's burst cannot
// take every slot and make other services' requests fail; more are
// refused with 503. Default: half of max in flight (at least 1).
func WithMaxInFlightPerCaller(n int) ServiceOption {
	return func(o *serviceOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight per caller must be at least 1", ErrInvalidConfig)
		}
		o.maxPerCaller = n
		return nil
	}
}

// WithMaxRequestBytes bounds a request body; larger ones get 413.
// Default [DefaultMaxRequestBytes].
func WithMaxRequestBytes(n int) ServiceOption {
	return func(o *serviceOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max request bytes must be positive", ErrInvalidConfig)
		}
		o.maxRequestBytes = n
		return nil
	}
}

// WithServiceRequestTimeout bounds the handling of one request.
// Default [DefaultRequestTimeout].
func WithServiceRequestTimeout(d time.Duration) ServiceOption {
	return func(o *serviceOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout must be positive", ErrInvalidConfig)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithCallers makes the service take each request's caller from the
// account key the NATS server put in the subject (the importing account,
// see auth.Accounts), mapped to its service by c; a key c does not know is
// refused with 401. It also makes the service answer only replies the
// server mapped back to the requesting account (subjects starting
// [MappedReplyPrefix]); a request with any other reply subject is dropped
// unanswered, since the service would otherwise publish, with its own
// rights, to a subject its caller chose.
func WithCallers(c Callers) ServiceOption {
	return func(o *serviceOptions) error {
		if c == nil {
			return fmt.Errorf("%w: nil callers", ErrInvalidConfig)
		}
		o.callers = c
		return nil
	}
}

// MappedReplyPrefix starts every reply subject the NATS server maps for a
// request that crossed from an importing account.
const MappedReplyPrefix = "_R_."

// WithServiceLogger sets the logger. Default slog.Default().
func WithServiceLogger(l *slog.Logger) ServiceOption {
	return func(o *serviceOptions) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		o.logger = l
		return nil
	}
}

// endpointStats are the counters of one endpoint, reported as the "data"
// of `nats micro stats`. micro's own num_requests counts every request;
// its num_errors counts only those refused before dispatch.
type endpointStats struct {
	inFlight  atomic.Int64
	served    atomic.Uint64
	errors    atomic.Uint64
	rejected  atomic.Uint64
	procNanos atomic.Int64
}

// EndpointStatsData is the "data" of an endpoint in `nats micro stats`.
type EndpointStatsData struct {
	// InFlight is how many requests run now.
	InFlight int64 `json:"in_flight"`
	// Served counts requests answered after dispatch, errors included.
	Served uint64 `json:"served"`
	// Errors counts error replies of dispatched requests.
	Errors uint64 `json:"errors"`
	// Rejected counts requests refused with 503 because
	// max-in-flight requests were running.
	Rejected uint64 `json:"rejected"`
	// AverageProcessingTime is the mean handling time of served requests,
	// in nanoseconds.
	AverageProcessingTime int64 `json:"average_processing_time"`
	// MaxInFlight is the instance's limit (shared by its endpoints).
	MaxInFlight int `json:"max_in_flight"`
}

// NewService starts serving m on nc. It fails with [ErrInvalidConfig] on
// bad arguments or options, or with the NATS error when subscribing fails.
func NewService(nc *nats.Conn, m *Manager, opts ...ServiceOption) (*Service, error) {
	if nc == nil || m == nil {
		return nil, fmt.Errorf("%w: nil connection or manager", ErrInvalidConfig)
	}
	o := serviceOptions{
		maxInFlight:     DefaultMaxInFlight,
		maxRequestBytes: DefaultMaxRequestBytes,
		requestTimeout:  DefaultRequestTimeout,
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
	s := &Service{
		nc:    nc,
		m:     m,
		o:     o,
		log:   o.logger.With("component", "bus-service"),
		sem:   make(chan struct{}, o.maxInFlight),
		stats: make(map[Class]*endpointStats, len(Classes)),
	}
	for _, c := range Classes {
		s.stats[c] = &endpointStats{}
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:         ServiceName,
		Version:      ServiceVersion,
		Description:  "session-bus: shared user sessions over NATS",
		StatsHandler: s.statsData,
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Warn("nats error", keySubject, e.Subject, keyErr, e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bus: add micro service: %w", err)
	}
	s.svc = svc
	for _, c := range Classes {
		var methods []string
		for mth, mc := range methodClass {
			if mc == c {
				methods = append(methods, string(mth))
			}
		}
		slices.Sort(methods)
		err := svc.AddEndpoint(string(c), s.handler(c),
			micro.WithEndpointSubject(ClassSubject(c)),
			micro.WithEndpointMetadata(map[string]string{"methods": strings.Join(methods, ",")}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("bus: add endpoint %q: %w", c, err)
		}
	}
	// Make sure the server has the subscriptions before callers are told
	// the service is up: otherwise their first requests can meet no
	// responders.
	if err := nc.FlushTimeout(o.requestTimeout); err != nil {
		s.log.Warn("flush of subscriptions failed", keyErr, err)
	}
	s.log.Info("service started", "id", svc.Info().ID, "version", ServiceVersion, "max_in_flight", o.maxInFlight)
	return s, nil
}

// Info returns the micro service's identity and endpoints.
func (s *Service) Info() micro.Info { return s.svc.Info() }

// Stats returns the micro service's statistics; each endpoint's Data is an
// [EndpointStatsData].
func (s *Service) Stats() micro.Stats { return s.svc.Stats() }

func (s *Service) statsData(e *micro.Endpoint) any {
	st, ok := s.stats[Class(e.Name)]
	if !ok {
		return nil
	}
	d := EndpointStatsData{
		InFlight:    st.inFlight.Load(),
		Served:      st.served.Load(),
		Errors:      st.errors.Load(),
		Rejected:    st.rejected.Load(),
		MaxInFlight: s.o.maxInFlight,
	}
	if d.Served > 0 {
		d.AverageProcessingTime = st.procNanos.Load() / int64(d.Served)
	}
	return d
}

// handler is the micro handler of class c. micro calls it for one request
// at a time, so it only admits the request and hands it to a goroutine.
func (s *Service) handler(c Class) micro.HandlerFunc {
	st := s.stats[c]
	return func(req micro.Request) {
		if s.o.callers != nil && !strings.HasPrefix(req.Reply(), MappedReplyPrefix) {
			st.rejected.Add(1) // counted, not logged: a log line per request is a flood
			return
		}
		s.mu.RLock()
		if s.finished {
			s.mu.RUnlock()
			s.refuse(req, st, "service is stopping")
			return
		}
		_, _, caller, _ := parseSubject(req.Subject()) // a bad subject is answered by serve
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
func (s *Service) refuse(req micro.Request, st *endpointStats, why string) {
	st.rejected.Add(1)
	if req.Reply() == "" {
		return
	}
	code := CodeOf(ErrUnavailable)
	msg := ErrorMessage(fmt.Errorf("%w: %s", ErrUnavailable, why))
	body, _ := json.Marshal(ErrorReply{Error: ErrorBody{Code: code.Name, Message: msg}})
	if err := req.Error(strconv.Itoa(code.Status), msg, body); err != nil {
		s.log.Warn("reply failed", keySubject, req.Subject(), keyErr, err)
	}
}

// serve handles one admitted request and publishes its reply. It replies
// with nc.PublishMsg rather than req.Respond: micro reads the request's
// state after the handler returns, which this goroutine must not race.
func (s *Service) serve(c Class, req micro.Request, st *endpointStats) {
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
			msg = s.errorMsg(ErrInternal)
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
			status = CodeOf(err).Status
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
func (s *Service) run(c Class, req micro.Request) (Method, string, any, error) {
	class, method, caller, ok := parseSubject(req.Subject())
	if !ok || class != c {
		return method, caller, nil, fmt.Errorf("%w: subject must be %s.<class>.<method>.<caller>", ErrUnknownOperation, SubjectPrefix)
	}
	mc, known := ClassOf(method)
	if !known || mc != c {
		return method, caller, nil, fmt.Errorf("%w: no method %q in class %q", ErrUnknownOperation, truncate(string(method), 64), c)
	}
	if s.o.callers != nil {
		id, ok := s.o.callers.ServiceOf(caller)
		if !ok {
			return method, "", nil, fmt.Errorf("%w: the requesting account belongs to no registered service", ErrUnauthenticated)
		}
		caller = id
	}
	if err := ValidateServiceID(caller); err != nil {
		return method, caller, nil, fmt.Errorf("%w (the caller token of the subject)", err)
	}
	if n := len(req.Data()); n > s.o.maxRequestBytes {
		return method, caller, nil, fmt.Errorf("%w: request body is %d bytes, limit %d", ErrTooLarge, n, s.o.maxRequestBytes)
	}
	ctx, cancel := context.WithTimeout(ContextWithService(context.Background(), caller), s.o.requestTimeout)
	defer cancel()
	reply, err := ops[method](ctx, s.m, req.Data())
	if err != nil {
		return method, caller, nil, err
	}
	if sess, ok := reply.(*Session); ok && sess.Attributes == nil {
		sess.Attributes = map[string]string{}
	}
	return method, caller, reply, nil
}

// errorMsg builds an error reply: status and message (see [ErrorMessage])
// in the micro error headers, and {"error":{"code","message"}} in the
// body. Internal errors carry no detail; they are logged here.
func (s *Service) errorMsg(err error) *nats.Msg {
	code := CodeOf(err)
	if code.Status >= 500 && !errors.Is(err, ErrUnavailable) {
		s.log.Error("request failed", keyCode, code.Name, keyErr, err)
		code = CodeOf(ErrInternal)
	}
	msg := headerSafe(ErrorMessage(err))
	body, _ := json.Marshal(ErrorReply{Error: ErrorBody{Code: code.Name, Message: msg}})
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
	return truncate(s, 512)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Close stops taking requests and returns once every request the service
// took has been answered. It drains the endpoint subscriptions: requests
// the server delivered before the unsubscribe are still served, and new
// ones go to the other instances of the queue group (or get no responders
// when none is left). Close may be called more than once.
func (s *Service) Close() error {
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
// a flush makes sure the server has seen the unsubscribe and sent all it
// will, and a barrier runs once every subscription of the connection has
// passed the messages queued before it. It gives up after the request
// timeout (a slow callback of another subscription on nc); requests that
// arrive later are refused with 503.
func (s *Service) awaitDelivered() {
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

// callerSlots counts the requests in flight per caller.
type callerSlots struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes a slot for caller unless it already holds limit.
func (c *callerSlots) acquire(caller string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[caller] >= limit {
		return false
	}
	c.n[caller]++
	return true
}

func (c *callerSlots) release(caller string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[caller] <= 1 {
		delete(c.n, caller) // the map holds only callers with requests in flight
		return
	}
	c.n[caller]--
}
