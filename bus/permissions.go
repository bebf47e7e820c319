package bus

import (
	"fmt"
	"slices"
	"strings"

	"github.com/session-bus/session-bus/internal/textutil"
)

// Permission names a service may hold in its [ServiceCredential].
// [Manager.RegisterService] refuses any other name. What each grants on
// NATS is package auth's table (auth.Permissions); the bus itself takes the
// caller from the request subject, whose rights the server enforces.
const (
	// PermSessionRead allows the read class: get, get_by_token,
	// get_attribute, list_by_login.
	PermSessionRead = "session.read"
	// PermSessionWrite allows the write class: create, update, refresh,
	// delete, delete_by_token, set_attribute, remove_attribute, delete_all.
	PermSessionWrite = "session.write"
	// PermSessionAdmin allows the "sessions" class, reserved for bus-wide
	// listings, and the micro discovery subjects ($SRV.>) behind
	// `nats micro ls|info|stats session-bus`.
	PermSessionAdmin = "session.admin"
	// PermServiceVerify allows the verify method of the service class.
	PermServiceVerify = "service.verify"
	// PermServiceAdmin allows the admin class: register_service,
	// rotate_service, remove_service, list_services.
	PermServiceAdmin = "service.admin"
	// PermEventsSubscribe allows subscribing to change events (session.>)
	// and consuming the events stream through JetStream. It grants nothing
	// on the sessions KV bucket.
	PermEventsSubscribe = "events.subscribe"
)

// AllPermissions lists every permission name, in table order. Callers must
// not modify it.
var AllPermissions = []string{
	PermSessionRead, PermSessionWrite, PermSessionAdmin,
	PermServiceVerify, PermServiceAdmin, PermEventsSubscribe,
}

// ValidatePermissions accepts a list of names from [AllPermissions], in
// any order, repeats allowed. Names compare exactly: "Session.Read" is
// unknown. It fails with [ErrInvalidInput] naming the first unknown one.
func ValidatePermissions(perms []string) error {
	for _, p := range perms {
		if !slices.Contains(AllPermissions, p) {
			return fmt.Errorf("%w: unknown permission %q (known: %s)", ErrInvalidInput, textutil.Truncate(p, 64), strings.Join(AllPermissions, ", "))
		}
	}
	return nil
}
