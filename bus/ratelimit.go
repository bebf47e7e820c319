package bus

import (
	"sync"
	"time"
)

// Verification rate limit: after verifyMaxFailures failures within
// verifyWindow, a service id is refused until verifyWindow has passed since
// the first of them. Counted per process.
const (
	verifyMaxFailures = 5
	verifyWindow      = time.Minute
)

type failureWindow struct {
	start time.Time
	n     int
}

// verifyLimiter counts failed verifications per service id.
type verifyLimiter struct {
	mu    sync.Mutex
	fails map[string]*failureWindow
}

// blocked reports whether id is cooling down at now.
func (l *verifyLimiter) blocked(id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.fails[id]
	if !ok {
		return false
	}
	if now.Sub(w.start) >= verifyWindow {
		delete(l.fails, id)
		return false
	}
	return w.n >= verifyMaxFailures
}

func (l *verifyLimiter) fail(id string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails == nil {
		l.fails = map[string]*failureWindow{}
	}
	w, ok := l.fails[id]
	if !ok || now.Sub(w.start) >= verifyWindow {
		w = &failureWindow{start: now}
		l.fails[id] = w
	}
	w.n++
	if len(l.fails) > 10_000 { // bound memory under a spray of ids
		for k, v := range l.fails {
			if now.Sub(v.start) >= verifyWindow {
				delete(l.fails, k)
			}
		}
	}
}

func (l *verifyLimiter) reset(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, id)
}
