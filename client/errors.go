package client

import "errors"

// ErrCredsFile: a credentials file is unreadable, malformed, names no
// valid service, or is readable by group or others. The calls of a
// [Client] return bus sentinels instead.
var ErrCredsFile = errors.New("client: bad credentials file")
