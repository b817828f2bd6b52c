package regclient

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var anyAlg = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512}

// Describe writes a token's header and claims for a person, without verifying the signature
// (it says so): alg, kid, the x5c chain's certificates, iss, sub, aud, expiry and time left,
// and the access list.
func Describe(w io.Writer, raw string, now time.Time) error {
	tok, err := jwt.ParseSigned(raw, anyAlg)
	if err != nil {
		return fmt.Errorf("not a JWT: %w", err)
	}
	var claims map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	h := tok.Headers[0]
	fmt.Fprintln(w, "(decoded without verifying the signature)")
	fmt.Fprintf(w, "alg: %s\nkid: %s\n", h.Algorithm, h.KeyID)
	var hdr struct {
		X5C []string `json:"x5c"`
	}
	if seg, _, ok := strings.Cut(raw, "."); ok {
		if b, err := base64.RawURLEncoding.DecodeString(seg); err == nil {
			_ = json.Unmarshal(b, &hdr)
		}
	}
	{
		for i, s := range hdr.X5C {
			if der, err := decodeB64(s); err == nil {
				if cert, err := x509.ParseCertificate(der); err == nil {
					fmt.Fprintf(w, "x5c[%d]: subject %q, issuer %q, valid %s to %s\n", i, cert.Subject.String(), cert.Issuer.String(),
						cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
				}
			}
		}
	}
	keys := make([]string, 0, len(claims))
	for k := range claims {
		if k != "access" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := claims[k]
		if f, ok := v.(float64); ok && (k == "exp" || k == "iat" || k == "nbf") {
			t := time.Unix(int64(f), 0).UTC()
			extra := ""
			if k == "exp" {
				if left := t.Sub(now); left > 0 {
					extra = fmt.Sprintf(" (in %s)", left.Round(time.Second))
				} else {
					extra = fmt.Sprintf(" (EXPIRED %s ago)", (-left).Round(time.Second))
				}
			}
			fmt.Fprintf(w, "%s: %s%s\n", k, t.Format(time.RFC3339), extra)
			continue
		}
		fmt.Fprintf(w, "%s: %v\n", k, v)
	}
	access, _ := claims["access"].([]any)
	if len(access) == 0 {
		fmt.Fprintln(w, "access: (none)")
	}
	for _, a := range access {
		m, _ := a.(map[string]any)
		var acts []string
		if l, ok := m["actions"].([]any); ok {
			for _, x := range l {
				acts = append(acts, fmt.Sprint(x))
			}
		}
		fmt.Fprintf(w, "access: %v:%v:%s\n", m["type"], m["name"], strings.Join(acts, ","))
	}
	return nil
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
