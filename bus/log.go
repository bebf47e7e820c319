package bus

// Log attribute keys, one place for all of them. Session ids are logged,
// tokens and secrets never.
const (
	keySessionID = "session_id"
	keyServiceID = "service_id"
	keyErr       = "err"
)
