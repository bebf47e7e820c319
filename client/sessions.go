package client

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/session-bus/session-bus/bus"
)

// Each method is bus.Manager's over the wire: same arguments, same
// sentinels, plus bus.ErrUnavailable when no bus answers in time and
// bus.ErrPermissionDenied when the NATS server refuses the request.

// RegisterService registers a service and returns its secret (the one
// given, or one the bus generates when secret is empty). Errors:
// bus.ErrInvalidInput, bus.ErrServiceExists.
func (c *Client) RegisterService(ctx context.Context, cred bus.ServiceCredential, secret string) (string, error) {
	if err := validUTF8(cred.ServiceID, cred.ServiceName, secret); err != nil {
		return "", err
	}
	if err := validUTF8(cred.Permissions...); err != nil {
		return "", err
	}
	var r bus.RegisterServiceReply
	err := c.call(ctx, bus.MethodRegisterService, bus.RegisterServiceRequest{
		ServiceID:   cred.ServiceID,
		ServiceName: cred.ServiceName,
		Permissions: cred.Permissions,
		Secret:      secret,
	}, &r)
	return r.Secret, err
}

// VerifyService checks a service's secret and returns its credential.
// Errors: bus.ErrUnauthenticated.
func (c *Client) VerifyService(ctx context.Context, serviceID, secret string) (bus.ServiceCredential, error) {
	var r bus.ServiceCredential
	if err := validUTF8(serviceID, secret); err != nil {
		return r, bus.ErrUnauthenticated
	}
	err := c.call(ctx, bus.MethodVerify, bus.VerifyRequest{ServiceID: serviceID, Secret: secret}, &r)
	return r, err
}

// RemoveService unregisters a service; a missing one is not an error.
func (c *Client) RemoveService(ctx context.Context, serviceID string) error {
	return c.call(ctx, bus.MethodRemoveService, bus.ServiceIDRequest{ServiceID: serviceID}, nil)
}

// RotateService gives a service a new secret (generated when secret is
// empty) and returns it; the old one keeps working for grace (whole
// seconds). Errors: bus.ErrServiceNotFound, bus.ErrInvalidInput.
func (c *Client) RotateService(ctx context.Context, serviceID, secret string, grace time.Duration) (string, error) {
	if err := validUTF8(serviceID, secret); err != nil {
		return "", err
	}
	var r bus.RegisterServiceReply
	err := c.call(ctx, bus.MethodRotateService, bus.RotateServiceRequest{
		ServiceID: serviceID, Secret: secret, GraceSeconds: int64(grace / time.Second),
	}, &r)
	return r.Secret, err
}

// ListServices returns every registered service, ordered by id.
func (c *Client) ListServices(ctx context.Context) ([]bus.ServiceCredential, error) {
	var r bus.ServicesReply
	if err := c.call(ctx, bus.MethodListServices, bus.EmptyMessage{}, &r); err != nil {
		return nil, err
	}
	return r.Services, nil
}

// CreateSession creates a session for loginID with the user's token and,
// with bus.WithAttributes, its first attributes in the same write; the
// returned session carries the token. Errors: bus.ErrInvalidInput,
// bus.ErrTooLarge, bus.ErrTokenInUse, bus.ErrSessionLimit, bus.ErrConflict.
func (c *Client) CreateSession(ctx context.Context, loginID, token string, opts ...bus.CreateOption) (*bus.Session, error) {
	if err := validUTF8(loginID, token); err != nil {
		return nil, err
	}
	o := bus.NewCreateOptions(opts...)
	for k, v := range o.Attributes {
		if err := validUTF8(k, v); err != nil {
			return nil, err
		}
	}
	return c.session(ctx, bus.MethodCreate, bus.CreateRequest{LoginID: loginID, Token: token, Attributes: o.Attributes})
}

// GetSession returns a session by id. Errors: bus.ErrInvalidInput,
// bus.ErrSessionNotFound.
func (c *Client) GetSession(ctx context.Context, sessionID string) (*bus.Session, error) {
	if c.cache != nil {
		return c.cache.get(ctx, c, sessionID)
	}
	return c.session(ctx, bus.MethodGet, bus.SessionIDRequest{SessionID: sessionID})
}

// GetSessionByToken returns the session of a user's token. Errors:
// bus.ErrInvalidInput, bus.ErrSessionNotFound.
func (c *Client) GetSessionByToken(ctx context.Context, token string) (*bus.Session, error) {
	if err := validUTF8(token); err != nil {
		return nil, err
	}
	if c.cache != nil {
		return c.cache.getByToken(ctx, c, token)
	}
	return c.session(ctx, bus.MethodGetByToken, bus.TokenRequest{Token: token})
}

// UpdateSession replaces the attributes of s if s.Revision is still the
// latest, and returns the new version. s.Token is not sent. Errors:
// bus.ErrInvalidInput, bus.ErrTooLarge, bus.ErrConflict, bus.ErrSessionNotFound.
func (c *Client) UpdateSession(ctx context.Context, s *bus.Session) (*bus.Session, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil session", bus.ErrInvalidInput)
	}
	attrs := s.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	for k, v := range attrs {
		if err := validUTF8(k, v); err != nil {
			return nil, err
		}
	}
	defer c.wrote(s.SessionID)
	return c.session(ctx, bus.MethodUpdate, bus.UpdateRequest{
		SessionID:  s.SessionID,
		LoginID:    s.LoginID,
		Attributes: attrs,
		Revision:   s.Revision,
	})
}

// RefreshSession extends a session's idle timeout now. Errors:
// bus.ErrInvalidInput, bus.ErrSessionNotFound.
func (c *Client) RefreshSession(ctx context.Context, sessionID string) (*bus.Session, error) {
	defer c.wrote(sessionID)
	return c.session(ctx, bus.MethodRefresh, bus.SessionIDRequest{SessionID: sessionID})
}

// DeleteSession ends a session; a missing one is not an error. Errors:
// bus.ErrInvalidInput.
func (c *Client) DeleteSession(ctx context.Context, sessionID string) error {
	defer c.wrote(sessionID)
	return c.call(ctx, bus.MethodDelete, bus.SessionIDRequest{SessionID: sessionID}, nil)
}

// DeleteSessionByToken ends the session of a user's token; an unknown
// token is not an error. Errors: bus.ErrInvalidInput.
func (c *Client) DeleteSessionByToken(ctx context.Context, token string) error {
	if err := validUTF8(token); err != nil {
		return err
	}
	if c.cache != nil {
		defer c.cache.c.InvalidateToken(token)
	}
	return c.call(ctx, bus.MethodDeleteByToken, bus.TokenRequest{Token: token}, nil)
}

// SetAttribute sets one attribute of a session. Errors:
// bus.ErrInvalidInput, bus.ErrTooLarge, bus.ErrSessionNotFound.
func (c *Client) SetAttribute(ctx context.Context, sessionID, key, value string) error {
	if err := validUTF8(key, value); err != nil {
		return err
	}
	defer c.wrote(sessionID)
	return c.call(ctx, bus.MethodSetAttribute, bus.SetAttributeRequest{SessionID: sessionID, Key: key, Value: value}, nil)
}

// GetAttribute returns one attribute and whether it is set. Errors:
// bus.ErrInvalidInput, bus.ErrSessionNotFound.
func (c *Client) GetAttribute(ctx context.Context, sessionID, key string) (string, bool, error) {
	if err := validUTF8(key); err != nil {
		return "", false, err
	}
	if c.cache != nil {
		return c.cache.getAttribute(ctx, c, sessionID, key)
	}
	var r bus.AttributeReply
	if err := c.call(ctx, bus.MethodGetAttribute, bus.AttributeKeyRequest{SessionID: sessionID, Key: key}, &r); err != nil {
		return "", false, err
	}
	return r.Value, r.Found, nil
}

// RemoveAttribute removes one attribute; one not set is not an error.
// Errors: bus.ErrInvalidInput, bus.ErrSessionNotFound.
func (c *Client) RemoveAttribute(ctx context.Context, sessionID, key string) error {
	if err := validUTF8(key); err != nil {
		return err
	}
	defer c.wrote(sessionID)
	return c.call(ctx, bus.MethodRemoveAttribute, bus.AttributeKeyRequest{SessionID: sessionID, Key: key}, nil)
}

// SessionsByLogin returns the live sessions of a login, oldest first.
// Errors: bus.ErrInvalidInput.
func (c *Client) SessionsByLogin(ctx context.Context, loginID string) ([]*bus.Session, error) {
	if err := validUTF8(loginID); err != nil {
		return nil, err
	}
	var r bus.SessionsReply
	if err := c.call(ctx, bus.MethodListByLogin, bus.LoginRequest{LoginID: loginID}, &r); err != nil {
		return nil, err
	}
	return r.Sessions, nil
}

// DeleteAllSessions ends every session of a login and returns how many it
// ended. Errors: bus.ErrInvalidInput, bus.ErrConflict.
func (c *Client) DeleteAllSessions(ctx context.Context, loginID string) (int, error) {
	if err := validUTF8(loginID); err != nil {
		return 0, err
	}
	if c.cache != nil {
		defer c.cache.c.InvalidateLogin(loginID)
	}
	var r bus.DeleteAllReply
	if err := c.call(ctx, bus.MethodDeleteAll, bus.LoginRequest{LoginID: loginID}, &r); err != nil {
		return 0, err
	}
	return r.Deleted, nil
}

// wrote drops the cached copy of a session this client wrote: the bus's
// notice of it may not have been applied when the reply arrives.
func (c *Client) wrote(sessionID string) {
	if c.cache != nil {
		c.cache.c.Invalidate(sessionID)
	}
}

func (c *Client) session(ctx context.Context, m bus.Method, req any) (*bus.Session, error) {
	var s bus.Session
	if err := c.call(ctx, m, req, &s); err != nil {
		return nil, err
	}
	if s.Attributes == nil {
		s.Attributes = map[string]string{}
	}
	return &s, nil
}

// validUTF8 refuses strings that are not valid UTF-8 before they are
// encoded: encoding/json would silently replace the bad bytes, and the bus
// would act on a different id than the caller gave.
func validUTF8(vals ...string) error {
	for _, v := range vals {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: a string argument is not valid UTF-8", bus.ErrInvalidInput)
		}
	}
	return nil
}
