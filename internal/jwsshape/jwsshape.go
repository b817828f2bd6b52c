// Package jwsshape tells a compact JWS by its shape alone, before anything is verified: the
// gateway and the token command refuse what cannot be a JWT without a backend call, and the
// oidc backend claims only passwords that look like one (so they never reach bcrypt).
package jwsshape

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Compact reports whether s has the shape of a compact JWS: three base64url segments, the
// header and payload not empty. The signature may be empty (alg "none"), which a verifier
// then refuses for what it is rather than for its shape.
func Compact(s string) bool {
	h, rest, ok := strings.Cut(s, ".")
	if !ok || h == "" {
		return false
	}
	p, sig, ok := strings.Cut(rest, ".")
	return ok && p != "" && base64URL(h) && base64URL(p) && base64URL(sig)
}

// WithAlg reports whether s is Compact and its header is a JSON object with a string "alg".
func WithAlg(s string) bool {
	if !Compact(s) {
		return false
	}
	h, _, _ := strings.Cut(s, ".")
	hdr, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(hdr, &fields) != nil {
		return false
	}
	rawAlg, ok := fields["alg"]
	var alg string
	return ok && json.Unmarshal(rawAlg, &alg) == nil
}

func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
