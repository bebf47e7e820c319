package bus

import (
	"context"
	"fmt"
	"time"
)

// maxGraceSeconds bounds a rotation's overlap: 30 days.
const maxGraceSeconds = 30 * 24 * 3600

// op serves one method: it decodes the request body, calls the Manager
// and returns the reply to marshal. The acting service is in ctx.
type op func(ctx context.Context, m *Manager, body []byte) (any, error)

// ops is the one table of what each method does; [ClassOf] says which
// endpoint serves it.
var ops = map[Method]op{
	MethodGet: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r SessionIDRequest
		if err := DecodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return m.GetSession(ctx, r.SessionID)
	},
	MethodGetByToken: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r TokenRequest
		if err := DecodeRequest(body, &r, "token"); err != nil {
			return nil, err
		}
		return m.GetSessionByToken(ctx, r.Token)
	},
	MethodGetAttribute: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r AttributeKeyRequest
		if err := DecodeRequest(body, &r, "session_id", "key"); err != nil {
			return nil, err
		}
		v, ok, err := m.GetAttribute(ctx, r.SessionID, r.Key)
		if err != nil {
			return nil, err
		}
		return AttributeReply{Value: v, Found: ok}, nil
	},
	MethodListByLogin: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r LoginRequest
		if err := DecodeRequest(body, &r, "login_id"); err != nil {
			return nil, err
		}
		list, err := m.SessionsByLogin(ctx, r.LoginID)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []*Session{}
		}
		return SessionsReply{Sessions: list}, nil
	},
	MethodCreate: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r CreateRequest
		if err := DecodeRequest(body, &r, "login_id", "token"); err != nil {
			return nil, err
		}
		return m.CreateSession(ctx, r.LoginID, r.Token)
	},
	MethodUpdate: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r UpdateRequest
		if err := DecodeRequest(body, &r, "session_id", "attributes", "revision"); err != nil {
			return nil, err
		}
		return m.UpdateSession(ctx, &Session{
			SessionID:  r.SessionID,
			LoginID:    r.LoginID,
			Attributes: r.Attributes,
			Revision:   r.Revision,
		})
	},
	MethodRefresh: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r SessionIDRequest
		if err := DecodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return m.RefreshSession(ctx, r.SessionID)
	},
	MethodDelete: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r SessionIDRequest
		if err := DecodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return EmptyMessage{}, m.DeleteSession(ctx, r.SessionID)
	},
	MethodDeleteByToken: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r TokenRequest
		if err := DecodeRequest(body, &r, "token"); err != nil {
			return nil, err
		}
		return EmptyMessage{}, m.DeleteSessionByToken(ctx, r.Token)
	},
	MethodSetAttribute: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r SetAttributeRequest
		if err := DecodeRequest(body, &r, "session_id", "key", "value"); err != nil {
			return nil, err
		}
		return EmptyMessage{}, m.SetAttribute(ctx, r.SessionID, r.Key, r.Value)
	},
	MethodRemoveAttribute: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r AttributeKeyRequest
		if err := DecodeRequest(body, &r, "session_id", "key"); err != nil {
			return nil, err
		}
		return EmptyMessage{}, m.RemoveAttribute(ctx, r.SessionID, r.Key)
	},
	MethodDeleteAll: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r LoginRequest
		if err := DecodeRequest(body, &r, "login_id"); err != nil {
			return nil, err
		}
		n, err := m.DeleteAllSessions(ctx, r.LoginID)
		if err != nil {
			return nil, err
		}
		return DeleteAllReply{Deleted: n}, nil
	},
	MethodVerify: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r VerifyRequest
		if err := DecodeRequest(body, &r, "service_id", "secret"); err != nil {
			return nil, err
		}
		return m.VerifyService(ctx, r.ServiceID, r.Secret)
	},
	MethodRegisterService: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r RegisterServiceRequest
		if err := DecodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		secret, err := m.RegisterService(ctx, ServiceCredential{
			ServiceID:   r.ServiceID,
			ServiceName: r.ServiceName,
			Permissions: r.Permissions,
		}, r.Secret)
		if err != nil {
			return nil, err
		}
		return RegisterServiceReply{ServiceID: r.ServiceID, Secret: secret}, nil
	},
	MethodRotateService: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r RotateServiceRequest
		if err := DecodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		if r.GraceSeconds < 0 || r.GraceSeconds > maxGraceSeconds {
			return nil, fmt.Errorf("%w: grace_seconds must be 0..%d", ErrInvalidInput, maxGraceSeconds)
		}
		secret, err := m.RotateService(ctx, r.ServiceID, r.Secret, time.Duration(r.GraceSeconds)*time.Second)
		if err != nil {
			return nil, err
		}
		return RegisterServiceReply{ServiceID: r.ServiceID, Secret: secret}, nil
	},
	MethodRemoveService: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r ServiceIDRequest
		if err := DecodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		return EmptyMessage{}, m.RemoveService(ctx, r.ServiceID)
	},
	MethodListServices: func(ctx context.Context, m *Manager, body []byte) (any, error) {
		var r EmptyMessage
		if err := DecodeRequest(body, &r); err != nil {
			return nil, err
		}
		list, err := m.ListServices(ctx)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []ServiceCredential{}
		}
		return ServicesReply{Services: list}, nil
	},
}
