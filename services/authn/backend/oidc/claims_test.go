package oidc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookup(t *testing.T) {
	t.Parallel()
	claims := decode(t, `{
		"sub": "x",
		"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}},
		"a.b": "literal",
		"a": {"b": "nested", "c": "only-nested"},
		"x": {"y.z": {"w": "mixed"}},
		"p": {"q": 1},
		"p.q": {"r": "via-literal-prefix"},
		"n": 12.50,
		"t": true,
		"null": null
	}`)
	cases := []struct {
		path, want string
		found      bool
	}{
		{"sub", "x", true},
		{"kubernetes.io.namespace", "ci", true},
		{"kubernetes.io.serviceaccount.name", "builder", true},
		{"a.b", "literal", true}, // the literal key wins over the nested one
		{"a.c", "only-nested", true},
		{"x.y.z.w", "mixed", true},
		{"p.q.r", "via-literal-prefix", true}, // "p" → "q" is 1, not an object: back off to "p.q"
		{"n", "12.50", true},                  // numbers as written
		{"t", "true", true},
		{"kubernetes", "", false},
		{"kubernetes.io.nope", "", false},
		{"null", "", false}, // present but not a scalar
		{"sub.x", "", false},
	}
	for _, tc := range cases {
		v, ok := newPath(tc.path).lookup(claims)
		s, isScalar := scalar(v)
		if (ok && isScalar) != tc.found || s != tc.want {
			t.Errorf("lookup(%q) = %v (%v), want %q (%v)", tc.path, v, ok, tc.want, tc.found)
		}
	}
}

func TestClaimRule(t *testing.T) {
	t.Parallel()
	claims := decode(t, `{"ref": "refs/heads/main", "groups": ["a", "team-b", 7], "flag": false, "obj": {"k": "v"}, "id": 123}`)
	cases := []struct {
		path string
		pats []string
		want bool
	}{
		{"ref", []string{"refs/heads/main"}, true},
		{"ref", []string{"refs/heads/*"}, true},
		{"ref", []string{"refs/*"}, false}, // * stops at /
		{"ref", []string{"refs/tags/*", "refs/heads/ma?n"}, true},
		{"ref", []string{"refs/heads/mai"}, false},
		{"groups", []string{"team-*"}, true},
		{"groups", []string{"7"}, true},
		{"groups", []string{"c"}, false},
		{"flag", []string{"false"}, true},
		{"flag", []string{"true"}, false},
		{"obj", []string{"*"}, false},
		{"id", []string{"123"}, true},
		{"missing", []string{"*"}, false},
	}
	for _, tc := range cases {
		if got := (claimRule{path: newPath(tc.path), pats: tc.pats}).matches(claims); got != tc.want {
			t.Errorf("%s ~ %v = %v, want %v", tc.path, tc.pats, got, tc.want)
		}
	}
}

func TestParseKeySetKeepsOnlyUsablePublicSigningKeys(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	strong, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ec.Public(), KeyID: "ec", Use: "sig"},
		{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "secret", Algorithm: "HS256"},
		{Key: weak.Public(), KeyID: "weak"},
		{Key: ec.Public(), KeyID: "enc", Use: "enc"},
		{Key: strong, KeyID: "leaked-private"},
	}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	// An entry go-jose cannot read (Ed448) is skipped, not fatal.
	body = bytes.Replace(body, []byte(`"keys":[`), []byte(`"keys":[{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"},`), 1)
	keys, err := parseKeySet(body)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			t.Errorf("key %s kept with its private half", k.KeyID)
		}
	}
	if len(kids) != 2 || kids[0] != "ec" || kids[1] != "leaked-private" {
		t.Fatalf("kept %v, want [ec leaked-private]", kids)
	}
	if _, err := parseKeySet([]byte(`{"keys":[]}`)); err == nil {
		t.Fatal("an empty key set was accepted (it would replace working keys)")
	}
	if _, err := parseKeySet([]byte(`<html>`)); err == nil {
		t.Fatal("HTML accepted as a key set")
	}
}
