package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/session-bus/session-bus/bus"
)

// fixture holds the sessions a run prepares before measuring, and names
// the ones it creates, all under a prefix of its own so runs against one
// bus never collide.
type fixture struct {
	run   string            // "bench-<8 hex>"
	attrs map[string]string // every session created starts with these

	// The pool: session i has token tokens[i] and the login
	// logins[i/loginSessions].
	ids, tokens   []string
	logins        []string
	loginSessions int

	victims []string // a phase's sessions to delete, each once

	created atomic.Uint64 // sessions named by newSession
}

func newFixture(loginSessions int) *fixture {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &fixture{
		run:           "bench-" + hex.EncodeToString(b[:]),
		attrs:         map[string]string{"role": "member", "dept": "load-test"},
		loginSessions: loginSessions,
	}
}

// newSession names a session to create: a login and a token of its own.
func (f *fixture) newSession() (login, token string) {
	n := f.created.Add(1)
	return fmt.Sprintf("%s-new-%d", f.run, n), fmt.Sprintf("%s-new-token-%d", f.run, n)
}

func (f *fixture) sessionID(i uint64) string { return f.ids[i%uint64(len(f.ids))] }

func (f *fixture) token(i uint64) string { return f.tokens[i%uint64(len(f.tokens))] }

// login returns a pool login and how many sessions it has.
func (f *fixture) login(i uint64) (string, int) {
	j := int(i % uint64(len(f.logins)))
	return f.logins[j], min(f.loginSessions, len(f.ids)-j*f.loginSessions)
}

// victim returns the i-th session to delete, or errExhausted.
func (f *fixture) victim(i uint64) (string, error) {
	if i >= uint64(len(f.victims)) {
		return "", errExhausted
	}
	return f.victims[i], nil
}

// createPool creates n sessions, loginSessions to a login.
func (r *runner) createPool(ctx context.Context, n int) error {
	f := r.fix
	f.ids, f.tokens = make([]string, n), make([]string, n)
	f.logins = make([]string, (n+f.loginSessions-1)/f.loginSessions)
	for j := range f.logins {
		f.logins[j] = fmt.Sprintf("%s-login-%d", f.run, j)
	}
	return r.setup(ctx, "sessions", n, func(ctx context.Context, i int) error {
		token := fmt.Sprintf("%s-token-%d", f.run, i)
		s, err := r.base.CreateSession(ctx, f.logins[i/f.loginSessions], token, bus.WithAttributes(f.attrs))
		if err != nil {
			return err
		}
		f.ids[i], f.tokens[i] = s.SessionID, token
		return nil
	})
}

// createOthers creates n sessions of n logins of their own.
func (r *runner) createOthers(ctx context.Context, n int) error {
	f := r.fix
	return r.setup(ctx, "sessions of other logins", n, func(ctx context.Context, i int) error {
		_, err := r.base.CreateSession(ctx, fmt.Sprintf("%s-other-%d", f.run, i),
			fmt.Sprintf("%s-other-token-%d", f.run, i), bus.WithAttributes(f.attrs))
		return err
	})
}

// createVictims replaces the sessions to delete with n new ones.
func (r *runner) createVictims(ctx context.Context, n int) error {
	f := r.fix
	f.victims = make([]string, n)
	return r.setup(ctx, "sessions to delete", n, func(ctx context.Context, i int) error {
		login, token := f.newSession()
		s, err := r.base.CreateSession(ctx, login, token, bus.WithAttributes(f.attrs))
		if err != nil {
			return err
		}
		f.victims[i] = s.SessionID
		return nil
	})
}

// setup calls fn(i) for i in [0, n) on the run's clients, with a progress
// line, and returns the first error (which stops it), naming what.
func (r *runner) setup(ctx context.Context, what string, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Uint64
	stop := r.progress.start("setup: "+what, func(bool) string {
		return fmt.Sprintf("%d/%d", done.Load(), n)
	})
	var wg sync.WaitGroup
	for range min(r.cfg.Clients, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= uint64(n) {
					return
				}
				if err := fn(ctx, int(i)); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	stop()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("loadgen: setup %s: %w", what, err)
	}
	return nil
}
