package bus

import (
	"errors"
	"strings"
)

// Sentinel errors. Each maps to a stable wire code (see [Code]) and back, so
// errors.Is gives the same answer in-process and over NATS.
var (
	// ErrSessionNotFound: no live session has that id or token.
	ErrSessionNotFound = errors.New("bus: session not found")
	// ErrServiceNotFound: no service is registered under that id.
	ErrServiceNotFound = errors.New("bus: service not found")
	// ErrServiceExists: RegisterService was called for a registered id.
	ErrServiceExists = errors.New("bus: service already registered")
	// ErrConflict: a compare-and-set lost (stale revision), or a write raced
	// a logout of the whole login.
	ErrConflict = errors.New("bus: conflict")
	// ErrTokenInUse: another live session already has this token.
	ErrTokenInUse = errors.New("bus: token already in use")
	// ErrInvalidInput: an id, key or field is empty, malformed or not allowed.
	ErrInvalidInput = errors.New("bus: invalid input")
	// ErrTooLarge: an id, attribute or session is over its size limit.
	ErrTooLarge = errors.New("bus: too large")
	// ErrUnauthenticated: service credentials did not verify. It never says
	// which part was wrong.
	ErrUnauthenticated = errors.New("bus: unauthenticated")
	// ErrPermissionDenied: the caller lacks the permission for the operation.
	ErrPermissionDenied = errors.New("bus: permission denied")
	// ErrSessionLimit: the login has its maximum number of sessions and the
	// policy is to refuse new ones.
	ErrSessionLimit = errors.New("bus: session limit reached")
	// ErrRateLimited: too many attempts; try again later.
	ErrRateLimited = errors.New("bus: rate limited")
	// ErrUnavailable: the bus or its store cannot serve now.
	ErrUnavailable = errors.New("bus: unavailable")
	// ErrEventsBehind: the store refused a write because the change events
	// of earlier writes have not been announced yet and it can keep no
	// more of them (the event relay is down or far behind). Retry later:
	// nothing was written.
	ErrEventsBehind = errors.New("bus: events relay behind")
	// ErrInvalidConfig: a Config field or option is out of range.
	ErrInvalidConfig = errors.New("bus: invalid config")
	// ErrUnknownOperation: a request named an operation the bus does not
	// serve (a client newer than the bus, or a typo in a subject).
	ErrUnknownOperation = errors.New("bus: unknown operation")
	// ErrClaimLost: a store refused a create because another create or a
	// fence of the login came after its claim (see Store.ClaimLogin). The
	// Manager retries; it never reaches a caller of the Manager.
	ErrClaimLost = errors.New("bus: login claim lost to a concurrent create")
	// ErrInternal: anything else; the message carries no detail.
	ErrInternal = errors.New("bus: internal error")
)

// Code is a stable error code sent on the wire with an HTTP-like status.
type Code struct {
	Name   string // "not_found", ...
	Status int    // 404, ...
}

// codes is the one table that maps sentinels to wire codes.
var codes = []struct {
	err  error
	code Code
}{
	{ErrSessionNotFound, Code{"not_found", 404}},
	{ErrServiceNotFound, Code{"service_not_found", 404}},
	{ErrServiceExists, Code{"service_exists", 409}},
	{ErrConflict, Code{"conflict", 409}},
	{ErrTokenInUse, Code{"token_in_use", 409}},
	{ErrInvalidInput, Code{"invalid_input", 400}},
	{ErrTooLarge, Code{"too_large", 413}},
	{ErrUnauthenticated, Code{"unauthenticated", 401}},
	{ErrPermissionDenied, Code{"permission_denied", 403}},
	{ErrSessionLimit, Code{"session_limit", 429}},
	{ErrRateLimited, Code{"rate_limited", 429}},
	{ErrUnavailable, Code{"unavailable", 503}},
	{ErrEventsBehind, Code{"events_behind", 503}},
	{ErrUnknownOperation, Code{"unknown_operation", 400}},
	{ErrInvalidConfig, Code{"invalid_config", 500}},
	{ErrInternal, Code{"internal", 500}},
}

// CodeOf returns the wire code of err: the code of the first sentinel it
// wraps, or "internal"/500.
func CodeOf(err error) Code {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return Code{"internal", 500}
}

// ErrorForCode returns the sentinel for a wire code name, or [ErrInternal]
// when the name is unknown.
func ErrorForCode(name string) error {
	for _, c := range codes {
		if c.code.Name == name {
			return c.err
		}
	}
	return ErrInternal
}

// pkgPrefixes are the package prefixes Go error texts start their parts
// with: they name code, not the problem, and stay off the wire.
var pkgPrefixes = []string{"bus: ", "kvstore: ", "events: ", "auth: ", "client: ", "json: ", "nats: ", "jetstream: "}

// ErrorMessage returns the message an error reply carries for err: the
// text of the sentinel that gives its code, without the "bus: " prefix
// ("session not found"), followed by what err says after that sentinel,
// with package prefixes removed (`invalid input: field "token" is
// required`). What wrappers put before the sentinel, such as a store's
// operation and keys, is left out. Internal errors (every 500) say only
// "internal error". Package client turns the message back into the
// sentinel's error, so errors.Is and Error() match the in-process ones.
func ErrorMessage(err error) string {
	code := CodeOf(err)
	if code.Status >= 500 && code.Status != 503 {
		return sentence(ErrInternal)
	}
	sentinel := ErrorForCode(code.Name)
	text, name := err.Error(), sentinel.Error()
	i := strings.LastIndex(text, name)
	if i < 0 {
		return sentence(sentinel)
	}
	detail := text[i+len(name):]
	for changed := true; changed; {
		changed = false
		for _, p := range pkgPrefixes {
			if strings.Contains(detail, ": "+p) {
				detail = strings.ReplaceAll(detail, ": "+p, ": ")
				changed = true
			}
		}
	}
	return sentence(sentinel) + detail
}

// sentence is a sentinel's text without the package prefix.
func sentence(sentinel error) string {
	return strings.TrimPrefix(sentinel.Error(), "bus: ")
}
