package events

// Headers the session store writes on every change message, so that a relay
// reading the store's change stream can announce each change exactly once
// with the acting service and the reason.
const (
	// HeaderOp names the change: created, refreshed, updated, deleted.
	HeaderOp = "Session-Bus-Op"
	// HeaderService is the acting service, as the NATS server asserted it.
	HeaderService = "Session-Bus-Service"
	// HeaderReason is why a session was deleted: logout, logout_all, evicted, revoked.
	HeaderReason = "Session-Bus-Reason"
	// HeaderKeys is the JSON array of attribute keys an update changed.
	HeaderKeys = "Session-Bus-Keys"
	// HeaderLogin is the base64url (no padding) login id, on deletes, whose
	// message carries no session body.
	HeaderLogin = "Session-Bus-Login"
)
