package jwks

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

func TestParseKeepsOnlyUsablePublicSigningKeys(t *testing.T) {
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
	keys, err := Parse(body)
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
	if _, err := Parse([]byte(`{"keys":[]}`)); err == nil {
		t.Fatal("an empty key set was accepted (it would replace working keys)")
	}
	if _, err := Parse([]byte(`<html>`)); err == nil {
		t.Fatal("HTML accepted as a key set")
	}
}
