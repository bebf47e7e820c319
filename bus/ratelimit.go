package bus

import (
	"context"
	"sync"
	"time"

	"github.com/session-bus/session-bus/internal/textutil"
)

// Verification rate limit: after verifyMaxFailures failures within
// verifyWindow, one caller is refused for one service id until
// verifyWindow has passed since the first of them. Counted per process.
const (
	verifyMaxFailures = 5
	verifyWindow      = time.Minute
	// verifyMaxTracked bounds the windows kept in memory.
	verifyMaxTracked = 10_000
	// maxRemoteBytes bounds the address kept in a window's key.
	maxRemoteBytes = 128
)

// verifyKey names a failure window: the service id being verified and who
// asks. Failures of one caller never lock out another caller, nor a login
// from another host.
type verifyKey struct {
	// target is the service id, or "" for any id that is not a valid
	// one (it can never verify), so that a key stays small.
	target string
	// caller is the acting service from ctx (a verify over NATS), or "".
	caller string
	// remote is the address from ctx (a login through the auth
	// callout), or "".
	remote string
}

// verifyKeyOf returns the window a verification of serviceID in ctx
// counts against.
func verifyKeyOf(ctx context.Context, serviceID string) verifyKey {
	k := verifyKey{remote: textutil.Truncate(remoteFromContext(ctx), maxRemoteBytes)}
	if ValidateServiceID(serviceID) == nil {
		k.target = serviceID
	}
	k.caller, _ = ServiceFromContext(ctx)
	return k
}

type failureWindow struct {
	start time.Time
	n     int
}

// verifyLimiter counts failed verifications per [verifyKey]. Its zero
// value is ready to use.
type verifyLimiter struct {
	mu    sync.Mutex
	fails map[verifyKey]*failureWindow
}

// blocked reports whether k is cooling down at now.
func (l *verifyLimiter) blocked(k verifyKey, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.fails[k]
	if !ok {
		return false
	}
	if now.Sub(w.start) >= verifyWindow {
		delete(l.fails, k)
		return false
	}
	return w.n >= verifyMaxFailures
}

func (l *verifyLimiter) fail(k verifyKey, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails == nil {
		l.fails = map[verifyKey]*failureWindow{}
	}
	w, ok := l.fails[k]
	if !ok {
		l.makeRoom(now)
	}
	if !ok || now.Sub(w.start) >= verifyWindow {
		w = &failureWindow{start: now}
		l.fails[k] = w
	}
	w.n++
}

// makeRoom keeps fewer than verifyMaxTracked windows so that one more
// fits. When full, one pass frees a tenth of the room, so a spray of ids
// or addresses pays for a pass once per thousand new windows. It drops the
// windows that have ended, then ones that lock nothing out yet, then any.
// A sprayer can so end its own lockout, but only after thousands of failed
// verifications, each paying a password hash.
func (l *verifyLimiter) makeRoom(now time.Time) {
	if len(l.fails) < verifyMaxTracked {
		return
	}
	const keep = verifyMaxTracked - verifyMaxTracked/10
	for k, w := range l.fails {
		if now.Sub(w.start) >= verifyWindow {
			delete(l.fails, k)
		}
	}
	for k, w := range l.fails {
		if len(l.fails) <= keep {
			return
		}
		if w.n < verifyMaxFailures {
			delete(l.fails, k)
		}
	}
	for k := range l.fails {
		if len(l.fails) <= keep {
			return
		}
		delete(l.fails, k)
	}
}

func (l *verifyLimiter) reset(k verifyKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, k)
}
