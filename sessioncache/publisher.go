package sessioncache

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/bus"
)

// HeartbeatInterval is how often a [Publisher] says it is alive when it
// has no change to announce.
const HeartbeatInterval = 100 * time.Millisecond

// Publisher announces the sessions a bus process changed, on the
// connection that answers the writes: a notice published before the reply
// reaches the server before it, so every cache that follows the subject
// has it by the time the writer is told.
type Publisher struct {
	nc      *nats.Conn
	subject string
	id      string

	mu     sync.Mutex
	seq    uint64
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewPublisher starts announcing on nc, on subject (bus.CacheSubject when
// ""), with a heartbeat every [HeartbeatInterval].
func NewPublisher(nc *nats.Conn, subject string) *Publisher {
	if subject == "" {
		subject = bus.CacheSubject
	}
	p := &Publisher{nc: nc, subject: subject, id: uuid.NewString(), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.beat()
	return p
}

// Notify announces that the sessions ids changed or ended. A notice that
// cannot be published still takes its sequence number, so followers see
// the gap.
func (p *Publisher) Notify(ids ...string) {
	p.send(ids, false)
}

func (p *Publisher) beat() {
	defer p.wg.Done()
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.send(nil, false)
		}
	}
}

func (p *Publisher) send(ids []string, bye bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.seq++
	data, err := json.Marshal(bus.CacheNotice{Publisher: p.id, Seq: p.seq, SentAt: time.Now().UnixNano(), SessionIDs: ids, Bye: bye})
	if err == nil {
		_ = p.nc.Publish(p.subject, data) // on failure the next notice shows the gap
	}
	if bye {
		p.closed = true
	}
}

// Close stops the heartbeats and says goodbye, so that followers forget
// this publisher without dropping their caches. Call it after the last
// write of this process.
func (p *Publisher) Close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
	p.send(nil, true)
	_ = p.nc.Flush()
}
