// Package jwks is what authn's two JWT verifiers share — the oidc workload backend and the
// sso relying party: reading an issuer's documents with a size bound, keeping the usable
// signing keys of a key set, and trying the keys a token may have been signed with.
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxDocument bounds a discovery document or key set read from an issuer.
const MaxDocument = 1 << 20

// MinRSABits is the smallest RSA key a key set may hold for its key to be used.
const MinRSABits = 2048

// Get reads the JSON document at u with client: a status other than 200 or a body over
// MaxDocument is an error naming u, never the body.
func Get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > MaxDocument {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", u, MaxDocument)
	}
	return body, nil
}

// Parse keeps the set's public signing keys it can use and skips the rest (key types go-jose
// does not know, encryption keys, secrets, short RSA keys), as RFC 7517 §5 asks. A set with
// none left is an error, so a broken answer does not replace working keys.
func Parse(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || (k.Use != "" && k.Use != "sig") {
			continue
		}
		k = k.Public() // a set that leaks private keys is still read for the public halves only
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < MinRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default: // symmetric keys above all: a published secret signs nothing we trust
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key set holds no usable signing keys (%d entries)", len(raw.Keys))
	}
	return keys, nil
}

// Verify checks jws with the keys that may have made it: those with its kid (all, when it
// names none) whose own alg, if they state one, is alg. known says a key with that kid exists.
func Verify(keys []jose.JSONWebKey, jws *jose.JSONWebSignature, kid, alg string) (payload []byte, known, ok bool) {
	for i := range keys {
		k := &keys[i]
		if kid != "" {
			if k.KeyID != kid {
				continue
			}
			known = true
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if p, err := jws.Verify(k); err == nil {
			return p, true, true
		}
	}
	return nil, known, false
}
