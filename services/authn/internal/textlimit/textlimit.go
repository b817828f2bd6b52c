// Package textlimit cuts what a caller sent (a user agent, an address) to the length a store
// keeps, at a character boundary: a cut inside a UTF-8 sequence would store a string that
// protobuf refuses to send back.
package textlimit

import "unicode/utf8"

// Truncate returns s cut to at most n bytes, never inside a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
