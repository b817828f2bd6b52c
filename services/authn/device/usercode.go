package device

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
)

// UserCodeAlphabet is the 20 upper-case consonants of RFC 8628 §6.1: no vowels, so a code
// cannot spell a word, and none that are easily mistaken for each other or for digits.
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen letters give 20^8 ≈ 2.56e10 codes: with the wrong-code limit per address and
// a ten-minute life, guessing a live code is out of reach (RFC 8628 §5.1).
const userCodeLen = 8

// maxUserCodeInput bounds what NormalizeUserCode reads: a typed code with some dashes and
// spaces is far shorter, and anything longer is wrong anyway.
const maxUserCodeInput = 64

// newUserCode draws a normalized user code from r. A byte is used only when it is below the
// largest multiple of the alphabet's size (240), so every letter is equally likely: b%20 on
// all 256 values would favour the first 16.
func newUserCode(r io.Reader) (string, error) {
	const limit = 256 - 256%len(UserCodeAlphabet)
	out := make([]byte, 0, userCodeLen)
	buf := make([]byte, 2*userCodeLen)
	for len(out) < userCodeLen {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("device: user code: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, UserCodeAlphabet[int(b)%len(UserCodeAlphabet)])
			if len(out) == userCodeLen {
				break
			}
		}
	}
	return string(out), nil
}

// randomUserCode is newUserCode from crypto/rand.
func randomUserCode() (string, error) { return newUserCode(rand.Reader) }

// FormatUserCode writes a normalized user code as people read it, "WDJB-MJHT". Anything that
// is not a normalized code is returned as it is.
func FormatUserCode(normalized string) string {
	if len(normalized) != userCodeLen {
		return normalized
	}
	return normalized[:userCodeLen/2] + "-" + normalized[userCodeLen/2:]
}

// NormalizeUserCode turns a user code as a person typed it into its stored form: letters
// upper-cased, dashes and spaces dropped. It refuses anything else (a character outside
// UserCodeAlphabet, the wrong length); the caller treats that as a wrong code.
func NormalizeUserCode(s string) (string, bool) {
	if len(s) > maxUserCodeInput {
		return "", false
	}
	var b strings.Builder
	b.Grow(userCodeLen)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(UserCodeAlphabet, c) < 0 || b.Len() == userCodeLen {
			return "", false
		}
		b.WriteByte(c)
	}
	if b.Len() != userCodeLen {
		return "", false
	}
	return b.String(), true
}
