package natsapi

import (
	"context"
	"fmt"
	"time"

	"github.com/session-bus/session-bus/bus"
)

// maxGraceSeconds bounds a rotation's overlap: 30 days.
const maxGraceSeconds = 30 * 24 * 3600

// op serves one method: it decodes the request body, calls the Manager
// and returns the reply to marshal. The acting service is in ctx.
type op func(ctx context.Context, m *bus.Manager, body []byte) (any, error)

// ops is the one table of what each method does; bus.ClassOf says which
// endpoint serves it.
var ops = map[bus.Method]op{
	bus.MethodGet: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.SessionIDRequest
		if err := decodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return m.GetSession(ctx, r.SessionID)
	},
	bus.MethodGetByToken: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.TokenRequest
		if err := decodeRequest(body, &r, "token"); err != nil {
			return nil, err
		}
		return m.GetSessionByToken(ctx, r.Token)
	},
	bus.MethodGetAttribute: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.AttributeKeyRequest
		if err := decodeRequest(body, &r, "session_id", "key"); err != nil {
			return nil, err
		}
		v, ok, err := m.GetAttribute(ctx, r.SessionID, r.Key)
		if err != nil {
			return nil, err
		}
		return bus.AttributeReply{Value: v, Found: ok}, nil
	},
	bus.MethodListByLogin: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.LoginRequest
		if err := decodeRequest(body, &r, "login_id"); err != nil {
			return nil, err
		}
		list, err := m.SessionsByLogin(ctx, r.LoginID)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []*bus.Session{}
		}
		return bus.SessionsReply{Sessions: list}, nil
	},
	bus.MethodTouch: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.TouchRequest
		if err := decodeRequest(body, &r, "session_ids"); err != nil {
			return nil, err
		}
		missing, err := m.TouchSessions(ctx, r.SessionIDs)
		if err != nil {
			return nil, err
		}
		return bus.TouchReply{Missing: missing}, nil
	},
	bus.MethodCreate: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.CreateRequest
		if err := decodeRequest(body, &r, "login_id", "token"); err != nil {
			return nil, err
		}
		return m.CreateSession(ctx, r.LoginID, r.Token, bus.WithAttributes(r.Attributes))
	},
	bus.MethodUpdate: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.UpdateRequest
		if err := decodeRequest(body, &r, "session_id", "attributes", "revision"); err != nil {
			return nil, err
		}
		return m.UpdateSession(ctx, &bus.Session{
			SessionID:  r.SessionID,
			LoginID:    r.LoginID,
			Attributes: r.Attributes,
			Revision:   r.Revision,
		})
	},
	bus.MethodRefresh: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.SessionIDRequest
		if err := decodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return m.RefreshSession(ctx, r.SessionID)
	},
	bus.MethodDelete: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.SessionIDRequest
		if err := decodeRequest(body, &r, "session_id"); err != nil {
			return nil, err
		}
		return bus.EmptyMessage{}, m.DeleteSession(ctx, r.SessionID)
	},
	bus.MethodDeleteByToken: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.TokenRequest
		if err := decodeRequest(body, &r, "token"); err != nil {
			return nil, err
		}
		return bus.EmptyMessage{}, m.DeleteSessionByToken(ctx, r.Token)
	},
	bus.MethodSetAttribute: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.SetAttributeRequest
		if err := decodeRequest(body, &r, "session_id", "key", "value"); err != nil {
			return nil, err
		}
		return bus.EmptyMessage{}, m.SetAttribute(ctx, r.SessionID, r.Key, r.Value)
	},
	bus.MethodRemoveAttribute: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.AttributeKeyRequest
		if err := decodeRequest(body, &r, "session_id", "key"); err != nil {
			return nil, err
		}
		return bus.EmptyMessage{}, m.RemoveAttribute(ctx, r.SessionID, r.Key)
	},
	bus.MethodDeleteAll: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.LoginRequest
		if err := decodeRequest(body, &r, "login_id"); err != nil {
			return nil, err
		}
		n, err := m.DeleteAllSessions(ctx, r.LoginID)
		if err != nil {
			return nil, err
		}
		return bus.DeleteAllReply{Deleted: n}, nil
	},
	bus.MethodVerify: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.VerifyRequest
		if err := decodeRequest(body, &r, "service_id", "secret"); err != nil {
			return nil, err
		}
		return m.VerifyService(ctx, r.ServiceID, r.Secret)
	},
	bus.MethodRegisterService: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.RegisterServiceRequest
		if err := decodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		secret, err := m.RegisterService(ctx, bus.ServiceCredential{
			ServiceID:   r.ServiceID,
			ServiceName: r.ServiceName,
			Permissions: r.Permissions,
		}, r.Secret)
		if err != nil {
			return nil, err
		}
		return bus.RegisterServiceReply{ServiceID: r.ServiceID, Secret: secret}, nil
	},
	bus.MethodRotateService: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.RotateServiceRequest
		if err := decodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		if r.GraceSeconds < 0 || r.GraceSeconds > maxGraceSeconds {
			return nil, fmt.Errorf("%w: grace_seconds must be 0..%d", bus.ErrInvalidInput, maxGraceSeconds)
		}
		secret, err := m.RotateService(ctx, r.ServiceID, r.Secret, time.Duration(r.GraceSeconds)*time.Second)
		if err != nil {
			return nil, err
		}
		return bus.RegisterServiceReply{ServiceID: r.ServiceID, Secret: secret}, nil
	},
	bus.MethodRemoveService: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.ServiceIDRequest
		if err := decodeRequest(body, &r, "service_id"); err != nil {
			return nil, err
		}
		return bus.EmptyMessage{}, m.RemoveService(ctx, r.ServiceID)
	},
	bus.MethodListServices: func(ctx context.Context, m *bus.Manager, body []byte) (any, error) {
		var r bus.EmptyMessage
		if err := decodeRequest(body, &r); err != nil {
			return nil, err
		}
		list, err := m.ListServices(ctx)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []bus.ServiceCredential{}
		}
		return bus.ServicesReply{Services: list}, nil
	},
}
