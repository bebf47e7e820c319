package events

// Log attribute keys. Session ids are logged, payloads never.
const (
	keySessionID = "session_id"
	keySubject   = "subject"
	keyEventID   = "event_id"
	keyErr       = "err"
	keySeq       = "seq"
	keyGroup     = "group"
	keyStream    = "stream"
)
