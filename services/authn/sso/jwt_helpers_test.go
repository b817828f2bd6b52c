package sso_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func otherRawPart(raw string, i int) string { return strings.Split(raw, ".")[i] }

// noneToken is payload unsigned (alg none).
func noneToken(payload string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + payload + "."
}

// hsToken is payload signed with HS256 under secret: the algorithm-confusion forgery.
func hsToken(t *testing.T, payload, secret string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + payload
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
