package bus

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// encPrefix marks an attribute value encrypted at rest:
// "enc:v1:<key id>:<base64url(nonce|ciphertext)>".
const encPrefix = "enc:v1:"

// attrCipher seals attribute values with AES-GCM under the current key and
// opens them under any known key, so keys can rotate: add the new key, make
// it current, and values re-seal as sessions are written.
type attrCipher struct {
	current string
	aeads   map[string]cipher.AEAD
}

// WithAttributeEncryption encrypts attribute values at rest with AES-GCM.
// keys maps key ids ([A-Za-z0-9_-], as service ids) to 16, 24 or 32 byte
// AES keys; values are sealed with currentKeyID and opened with the key id
// stored beside them. Every bus instance on one store needs the same keys.
// The ciphertext is bound to its session and attribute key. Default: off.
func WithAttributeEncryption(currentKeyID string, keys map[string][]byte) Option {
	return func(o *options) error {
		c := &attrCipher{current: currentKeyID, aeads: map[string]cipher.AEAD{}}
		for id, key := range keys {
			if ValidateServiceID(id) != nil {
				return fmt.Errorf("%w: key id %q: letters, digits, '-' and '_' only", ErrInvalidConfig, id)
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return fmt.Errorf("%w: key %q: %w", ErrInvalidConfig, id, err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return fmt.Errorf("%w: key %q: %w", ErrInvalidConfig, id, err)
			}
			c.aeads[id] = aead
		}
		if _, ok := c.aeads[currentKeyID]; !ok {
			return fmt.Errorf("%w: current key %q is not among the keys", ErrInvalidConfig, currentKeyID)
		}
		o.cipher = c
		return nil
	}
}

func aad(sessionID, key string) []byte { return []byte(sessionID + "\x00" + key) }

func (c *attrCipher) seal(sessionID, key, value string) string {
	aead := c.aeads[c.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, []byte(value), aad(sessionID, key))
	return encPrefix + c.current + ":" + base64.RawURLEncoding.EncodeToString(sealed)
}

func (c *attrCipher) open(sessionID, key, value string) (string, error) {
	rest, ok := strings.CutPrefix(value, encPrefix)
	if !ok {
		return value, nil // written before encryption was turned on
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("attribute %q: malformed ciphertext", key)
	}
	aead, ok := c.aeads[id]
	if !ok {
		return "", fmt.Errorf("attribute %q: unknown key id %q", key, id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", fmt.Errorf("attribute %q: malformed ciphertext", key)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad(sessionID, key))
	if err != nil {
		return "", fmt.Errorf("attribute %q: %w", key, err)
	}
	return string(plain), nil
}

// sealed returns s as the store must see it: attribute values encrypted
// when encryption is on.
func (m *Manager) sealed(s *Session) *Session {
	if m.o.cipher == nil || len(s.Attributes) == 0 {
		return s
	}
	c := s.Clone()
	for k, v := range s.Attributes {
		c.Attributes[k] = m.o.cipher.seal(s.SessionID, k, v)
	}
	return c
}

// opened decrypts s's attribute values in place.
func (m *Manager) opened(s *Session) error {
	if m.o.cipher == nil {
		return nil
	}
	for k, v := range s.Attributes {
		plain, err := m.o.cipher.open(s.SessionID, k, v)
		if err != nil {
			return err
		}
		s.Attributes[k] = plain
	}
	return nil
}
