package auth

import "errors"

var (
	// ErrInvalidConfig: a Config field, option or argument is out of range.
	ErrInvalidConfig = errors.New("auth: invalid config")
	// ErrNoSystemConn: revoking needs a system account connection
	// ([WithSystemConn]).
	ErrNoSystemConn = errors.New("auth: no system account connection")
	// ErrKeyFile: a key file in the data dir is unreadable, malformed or
	// readable by others.
	ErrKeyFile = errors.New("auth: bad key file")
	// ErrRevoke: a server did not confirm closing a connection.
	ErrRevoke = errors.New("auth: revoke failed")
)
