package bus

import (
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Size limits of user-given input. Every id that can reach a NATS subject is
// checked before it does: a subject over ~4 KB makes the server drop the
// connection.
const (
	MaxLoginIDBytes   = 1024
	MaxTokenBytes     = 4096
	MaxAttrKeyBytes   = 256
	MaxServiceIDBytes = 64
)

var serviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidateLoginID accepts any valid UTF-8 string of 1..MaxLoginIDBytes bytes
// without NUL: dots, spaces, '*' and '>' included, since stores encode it.
func ValidateLoginID(id string) error {
	return validateText("login_id", id, MaxLoginIDBytes)
}

// ValidateSessionID accepts the canonical form of a UUID, which is what
// CreateSession hands out.
func ValidateSessionID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: session_id is empty", ErrInvalidInput)
	}
	if len(id) != 36 {
		return fmt.Errorf("%w: session_id is not a UUID", ErrInvalidInput)
	}
	if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("%w: session_id is not a UUID", ErrInvalidInput)
	}
	return nil
}

// ValidateServiceID accepts 1..MaxServiceIDBytes of [A-Za-z0-9_-], starting
// with a letter or digit: service ids become NATS user names and subject
// tokens.
func ValidateServiceID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: service_id is empty", ErrInvalidInput)
	}
	if len(id) > MaxServiceIDBytes {
		return fmt.Errorf("%w: service_id is over %d bytes", ErrTooLarge, MaxServiceIDBytes)
	}
	if !serviceIDPattern.MatchString(id) {
		return fmt.Errorf("%w: service_id may hold only letters, digits, '-' and '_'", ErrInvalidInput)
	}
	return nil
}

func validateToken(token string) error {
	return validateText("token", token, MaxTokenBytes)
}

func validateAttrKey(key string) error {
	return validateText("attribute key", key, MaxAttrKeyBytes)
}

func validateText(field, v string, max int) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalidInput, field)
	case len(v) > max:
		return fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, field, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidInput, field)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return fmt.Errorf("%w: %s contains NUL", ErrInvalidInput, field)
		}
	}
	return nil
}
