// Package page is the list paging the authn stores share (sessions, robots): page sizes
// coerced into range and opaque page tokens, written once so both lists answer alike.
package page

import (
	"encoding/base64"
	"encoding/json"
)

// Size normalizes a requested page size: n <= 0 is def, more than max is max (AIP-158: a
// larger size is coerced, not refused). Negative sizes are the caller's to refuse.
func Size(n, def, max int) int {
	switch {
	case n <= 0:
		return def
	case n > max:
		return max
	}
	return n
}

// EncodeToken makes the page token holding pos (a position in the list, JSON-encodable):
// base64url of its JSON, opaque to clients but not secret.
func EncodeToken(pos any) string {
	b, _ := json.Marshal(pos) // positions are plain structs: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeToken reads tok into pos; false when it is malformed or, with maxBytes > 0, longer
// than that (checked before decoding, so a huge token costs nothing).
func DecodeToken(tok string, maxBytes int, pos any) bool {
	if maxBytes > 0 && len(tok) > maxBytes {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, pos) == nil
}
