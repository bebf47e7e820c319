package kvstore

import (
	"encoding/base64"
	"strings"
)

// Key prefixes in the sessions bucket.
const (
	prefixSession = "s."
	prefixLogin   = "l."
	prefixToken   = "t."
	prefixFence   = "f."
)

func encodeLogin(loginID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(loginID))
}

func sessionKey(id string) string { return prefixSession + id }

func loginKey(loginID, sessionID string) string {
	return prefixLogin + encodeLogin(loginID) + "." + sessionID
}

func loginFilter(loginID string) string { return prefixLogin + encodeLogin(loginID) + ".*" }

func tokenKey(fingerprint string) string { return prefixToken + fingerprint }

func fenceKey(loginID string) string { return prefixFence + encodeLogin(loginID) }

// sessionIDFromLoginKey returns the last token of a login index key.
func sessionIDFromLoginKey(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}
