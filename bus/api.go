package bus

import "context"

// Sessions is the API of the bus: what [Manager] offers in-process and
// client.Client offers over NATS. Code written against it runs on either.
type Sessions interface {
	RegisterService(ctx context.Context, cred ServiceCredential, secret string) (string, error)
	VerifyService(ctx context.Context, serviceID, secret string) (ServiceCredential, error)
	CreateSession(ctx context.Context, loginID, token string, opts ...CreateOption) (*Session, error)
	GetSession(ctx context.Context, sessionID string) (*Session, error)
	GetSessionByToken(ctx context.Context, token string) (*Session, error)
	UpdateSession(ctx context.Context, s *Session) (*Session, error)
	RefreshSession(ctx context.Context, sessionID string) (*Session, error)
	DeleteSession(ctx context.Context, sessionID string) error
	DeleteSessionByToken(ctx context.Context, token string) error
	SetAttribute(ctx context.Context, sessionID, key, value string) error
	GetAttribute(ctx context.Context, sessionID, key string) (string, bool, error)
	RemoveAttribute(ctx context.Context, sessionID, key string) error
	SessionsByLogin(ctx context.Context, loginID string) ([]*Session, error)
	DeleteAllSessions(ctx context.Context, loginID string) (int, error)
}

var _ Sessions = (*Manager)(nil)
