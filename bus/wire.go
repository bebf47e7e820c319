package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Requests and replies of the wire protocol. Field names are SEED.md's;
// docs/PROTOCOL.md lists which method takes which. Session replies are the
// [Session] JSON itself. Every request field is required unless its comment
// says otherwise.

// SessionIDRequest is the request of get, refresh and delete.
type SessionIDRequest struct {
	SessionID string `json:"session_id"`
}

// TokenRequest is the request of get_by_token and delete_by_token.
type TokenRequest struct {
	Token string `json:"token"`
}

// LoginRequest is the request of list_by_login and delete_all.
type LoginRequest struct {
	LoginID string `json:"login_id"`
}

// CreateRequest is the request of create.
type CreateRequest struct {
	LoginID string `json:"login_id"`
	Token   string `json:"token"`
}

// UpdateRequest is the request of update: the new attributes of a session
// and the revision they were based on. A session as a read returned it may
// be sent back whole: its read-only fields are accepted and ignored.
type UpdateRequest struct {
	SessionID  string            `json:"session_id"`
	Attributes map[string]string `json:"attributes"`
	Revision   uint64            `json:"revision"`
	// LoginID is optional; when set it must be the session's.
	LoginID string `json:"login_id,omitempty"`

	// Ignored read-only fields of a [Session].
	Token      string     `json:"token,omitempty"`
	ServiceID  string     `json:"service_id,omitempty"`
	CreateTime *time.Time `json:"create_time,omitempty"`
	LastAccess *time.Time `json:"last_access,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// AttributeKeyRequest is the request of get_attribute and remove_attribute.
type AttributeKeyRequest struct {
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
}

// SetAttributeRequest is the request of set_attribute.
type SetAttributeRequest struct {
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

// AttributeReply is the reply of get_attribute. Value is "" when Found is
// false.
type AttributeReply struct {
	Value string `json:"value"`
	Found bool   `json:"found"`
}

// SessionsReply is the reply of list_by_login: the live sessions of the
// login, oldest first.
type SessionsReply struct {
	Sessions []*Session `json:"sessions"`
}

// DeleteAllReply is the reply of delete_all.
type DeleteAllReply struct {
	Deleted int `json:"deleted"`
}

// VerifyRequest is the request of verify; its reply is the
// [ServiceCredential].
type VerifyRequest struct {
	ServiceID string `json:"service_id"`
	Secret    string `json:"secret"`
}

// RegisterServiceRequest is the request of register_service. ServiceName,
// Permissions and Secret are optional; without a Secret the bus generates
// one.
type RegisterServiceRequest struct {
	ServiceID   string   `json:"service_id"`
	ServiceName string   `json:"service_name,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	Secret      string   `json:"secret,omitempty"`
}

// RotateServiceRequest asks for a new secret (generated when Secret is
// empty); the old one keeps working for GraceSeconds.
type RotateServiceRequest struct {
	ServiceID    string `json:"service_id"`
	Secret       string `json:"secret,omitempty"`
	GraceSeconds int64  `json:"grace_seconds,omitempty"`
}

// RegisterServiceReply is the reply of register_service and
// rotate_service: the only time a secret is sent back.
type RegisterServiceReply struct {
	ServiceID string `json:"service_id"`
	Secret    string `json:"secret"`
}

// ServiceIDRequest is the request of remove_service.
type ServiceIDRequest struct {
	ServiceID string `json:"service_id"`
}

// ServicesReply is the reply of list_services, ordered by id.
type ServicesReply struct {
	Services []ServiceCredential `json:"services"`
}

// EmptyMessage is the request of list_services and the reply of methods
// that return nothing but success: "{}".
type EmptyMessage struct{}

// ErrorReply is the body of every error reply; the same status and message
// travel in the Nats-Service-Error-Code and Nats-Service-Error headers.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a stable code (see [Code]) and a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DecodeRequest decodes a request body strictly into v: valid UTF-8, one
// JSON object and nothing after it, no unknown fields, field types as
// declared, and every field named in required present and not null. An
// empty body counts as {}. Failures are [ErrInvalidInput].
func DecodeRequest(data []byte, v any, required ...string) error {
	// encoding/json replaces invalid UTF-8 silently, so check first.
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidInput)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return fmt.Errorf("%w: body must be a JSON object", ErrInvalidInput)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: body must hold one JSON object only", ErrInvalidInput)
	}
	// A required field that decoded to its zero value may be absent or
	// null: only then pay for a second, exact look at the body.
	if len(required) > 0 && anyZero(v, required) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			return jsonErr(err)
		}
		for _, f := range required {
			if raw, ok := fields[f]; !ok || string(raw) == "null" {
				return fmt.Errorf("%w: field %q is required", ErrInvalidInput, f)
			}
		}
	}
	return nil
}

// fieldIndex caches, per request struct type, the field index of each JSON name.
var fieldIndex sync.Map // reflect.Type -> map[string]int

// anyZero reports whether any of the named JSON fields of the struct v
// points to holds its zero value.
func anyZero(v any, names []string) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return true
	}
	rv = rv.Elem()
	idx, ok := fieldIndex.Load(rv.Type())
	if !ok {
		m := map[string]int{}
		for i := range rv.NumField() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			m[name] = i
		}
		idx, _ = fieldIndex.LoadOrStore(rv.Type(), m)
	}
	for _, n := range names {
		i, ok := idx.(map[string]int)[n]
		if !ok || rv.Field(i).IsZero() {
			return true
		}
	}
	return false
}

// jsonErr describes a decode error without echoing the payload.
func jsonErr(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			return fmt.Errorf("%w: field %q must be %s", ErrInvalidInput, typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
		}
		return fmt.Errorf("%w: body must be a JSON object", ErrInvalidInput)
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return fmt.Errorf("%w: times must be RFC 3339 strings", ErrInvalidInput)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: malformed JSON", ErrInvalidInput)
	}
	// Unknown fields and time formats: the decoder's message names the
	// field with %q and holds no value.
	return fmt.Errorf("%w: %s", ErrInvalidInput, err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	case "slice":
		return "an array"
	case "uint64", "int", "int64":
		return "a non-negative integer"
	}
	return "of another type"
}
