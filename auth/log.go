package auth

// Log attribute keys.
const (
	keyServiceID = "service_id"
	keyErr       = "err"
	keyServer    = "server_id"
	keyCount     = "connections"
)
