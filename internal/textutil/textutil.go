// Package textutil holds the text helpers that several packages share.
package textutil

import "unicode/utf8"

// Truncate returns s cut to at most n bytes at a rune boundary, with
// "..." appended when it was cut: for echoing text a caller chose (an id,
// a method name) in an error or a log line without echoing all of it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
