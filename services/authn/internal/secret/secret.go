// Package secret is what robot keys and personal access tokens share: a prefixed random
// secret (the prefix routes it in the authn chain), its shape checked before any store read,
// random public ids, and the naming rules of robots and tokens.
package secret

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// New returns prefix + base64url(n random bytes).
func New(prefix string, n int) (string, error) {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// WellFormed reports whether s is a secret New(prefix, n) could have made.
func WellFormed(s, prefix string, n int) bool {
	body, ok := strings.CutPrefix(s, prefix)
	if !ok || len(body) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(body)
	return err == nil
}

// NameProblem says what is wrong with a robot or token name, "" when nothing: 1 to max of
// a-z, 0-9, '.', '_' and '-', starting and ending with a letter or digit. Lower case only,
// so "CI" and "ci" are not two names; no ':' (the Basic-auth separator) and nothing a shell
// or a URL path would mangle.
func NameProblem(name string, max int) string {
	if name == "" {
		return "name is required"
	}
	if len(name) > max {
		return fmt.Sprintf("name is longer than %d characters", max)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			continue
		}
		if (c == '.' || c == '_' || c == '-') && i > 0 && i < len(name)-1 {
			continue
		}
		return "name must be lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
	}
	return ""
}
