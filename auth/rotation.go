package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/retry"
)

// SweepInterval is how often every bus process looks for rotations whose
// grace has ended, so that old credentials are revoked even when the
// process that rotated them is gone.
const SweepInterval = 30 * time.Second

// Reissue issues a new user of cred's account. The users issued before
// it are revoked after grace: at once for 0; else a tag in the account
// JWT records the revocation due, which this process's timer or any bus
// process's sweep ([Accounts.Sweep]) carries out, so a restart or the
// loss of this process does not keep old credentials alive.
func (a *Accounts) Reissue(ctx context.Context, cred bus.ServiceCredential, grace time.Duration) ([]byte, error) {
	if cred.Account == "" {
		return nil, fmt.Errorf("%w: service %s has no account", ErrInvalidConfig, cred.ServiceID)
	}
	// Revocation compares whole seconds of issue time: the new user must
	// be issued in a later second than every user it replaces.
	before := time.Now().Truncate(time.Second)
	if err := retry.Sleep(ctx, time.Until(before.Add(time.Second))); err != nil {
		return nil, fmt.Errorf("auth: waiting for the next second: %w", err)
	}
	creds, err := a.newUser(cred.Account, cred)
	if err != nil {
		return nil, err
	}
	at := time.Now().Add(grace)
	err = a.update(ctx, cred.Account, func(ac *jwt.AccountClaims) bool {
		if grace <= 0 {
			ac.RevokeAt(jwt.All, before)
		} else {
			ac.Tags.Add(revokeTag + strconv.FormatInt(before.Unix(), 10) + ":" + strconv.FormatInt(at.Unix(), 10))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if grace > 0 {
		a.schedule(cred.Account, at)
	}
	return creds, nil
}

// Sweep carries out the revocations due in the given accounts and arms a
// timer for the next one of each. Every bus process runs it at start and
// every [SweepInterval].
func (a *Accounts) Sweep(ctx context.Context, accounts []string) error {
	var errs []error
	for _, account := range accounts {
		next, err := a.revokeDue(ctx, account)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !next.IsZero() {
			a.schedule(account, next)
		}
	}
	return errors.Join(errs...)
}

// revokeDue revokes the users of account that a rotation whose grace has
// ended replaced, drops those rotations' tags (and only those), and
// returns when the next pending one is due (zero for none).
func (a *Accounts) revokeDue(ctx context.Context, account string) (time.Time, error) {
	var next time.Time
	err := a.update(ctx, account, func(ac *jwt.AccountClaims) bool {
		now := time.Now()
		var revokeBefore time.Time
		kept := ac.Tags[:0:0]
		for _, tag := range ac.Tags {
			before, at, ok := parseRevokeTag(tag)
			switch {
			case !ok:
				kept = append(kept, tag)
			case !at.After(now):
				if before.After(revokeBefore) {
					revokeBefore = before
				}
			default:
				kept = append(kept, tag)
				if next.IsZero() || at.Before(next) {
					next = at
				}
			}
		}
		if revokeBefore.IsZero() {
			return false // nothing due: push nothing
		}
		ac.RevokeAt(jwt.All, revokeBefore) // a newer revocation already there is kept
		ac.Tags = kept
		return true
	})
	return next, err
}

func parseRevokeTag(tag string) (before, at time.Time, ok bool) {
	rest, ok := strings.CutPrefix(tag, revokeTag)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	b, t, ok := strings.Cut(rest, ":")
	bs, err1 := strconv.ParseInt(b, 10, 64)
	ts, err2 := strconv.ParseInt(t, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(bs, 0), time.Unix(ts, 0), true
}

// schedule arms a timer that sweeps account at at, unless one fires
// sooner already.
func (a *Accounts) schedule(account string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return // the next start's sweep carries it out
	}
	if t, ok := a.timers[account]; ok && !t.due.After(at) {
		return
	}
	if t, ok := a.timers[account]; ok {
		t.timer.Stop()
	}
	a.timers[account] = pendingSweep{due: at, timer: time.AfterFunc(time.Until(at), func() {
		a.mu.Lock()
		delete(a.timers, account)
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Sweep(ctx, []string{account}); err != nil {
			a.log.Error("revoking rotated credentials failed; the next sweep tries again", "account", account, "err", err)
		}
	})}
}

// pendingSweep is an armed timer and when it fires.
type pendingSweep struct {
	due   time.Time
	timer *time.Timer
}

// Close stops the timers; a later start's sweep carries out what they
// would have.
func (a *Accounts) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, t := range a.timers {
		t.timer.Stop()
	}
	clear(a.timers)
}
