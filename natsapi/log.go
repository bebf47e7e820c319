package natsapi

// Log attribute keys, one place for all of them. Payloads are never
// logged: they can hold tokens and secrets.
const (
	keyServiceID = "service_id"
	keyErr       = "err"
	keySubject   = "subject"
	keyMethod    = "method"
	keyStatus    = "status"
	keyCode      = "code"
	keyDuration  = "duration"
)
