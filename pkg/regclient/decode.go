package regclient

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// anyAlgorithm lets Decode read whatever a token says it is signed with: it describes a
// token and never trusts it, so no algorithm needs refusing here.
var anyAlgorithm = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// Access is one entry of a distribution token's access claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (a Access) String() string { return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",") }

// Cert summarises one certificate of a token's x5c chain.
type Cert struct {
	Subject, Issuer     string
	NotBefore, NotAfter time.Time
}

// TokenInfo is what a token says about itself. None of it is verified.
type TokenInfo struct {
	Algorithm string
	KeyID     string
	Type      string
	X5C       []Cert
	// X5CCerts is the x5c chain itself, leaf first, for checking it against a trust root.
	X5CCerts []*x509.Certificate

	Issuer   string
	Subject  string
	Audience []string
	ID       string
	// IssuedAt, NotBefore and Expiry are zero when the claim is absent.
	IssuedAt, NotBefore, Expiry time.Time
	// Access is nil when the token has no access claim, empty when it grants nothing.
	Access []Access
	// Other holds the remaining claims, JSON-encoded.
	Other map[string]string
}

// Decode reads a compact JWS token's header and claims with go-jose, WITHOUT verifying its
// signature: it is for looking at a token, never for trusting one.
func Decode(raw string) (*TokenInfo, error) {
	raw = strings.TrimSpace(raw)
	tok, err := jwt.ParseSigned(raw, anyAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("not a signed JWT: %w", err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("token has %d signatures, want 1", len(tok.Headers))
	}
	h := tok.Headers[0]
	ti := &TokenInfo{Algorithm: h.Algorithm, KeyID: h.KeyID}
	if typ, ok := h.ExtraHeaders[jose.HeaderType].(string); ok {
		ti.Type = typ
	}
	// go-jose keeps the x5c chain it parsed to itself unless asked to verify it, so the
	// summary reads the header segment, which go-jose has already checked parses.
	if ti.X5C, ti.X5CCerts, err = x5cChain(raw); err != nil {
		return nil, err
	}

	var std jwt.Claims
	var extra struct {
		Access *[]Access `json:"access"`
	}
	var all map[string]json.RawMessage
	if err := tok.UnsafeClaimsWithoutVerification(&std, &extra, &all); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	ti.Issuer, ti.Subject, ti.Audience, ti.ID = std.Issuer, std.Subject, std.Audience, std.ID
	ti.IssuedAt, ti.NotBefore, ti.Expiry = numericTime(std.IssuedAt), numericTime(std.NotBefore), numericTime(std.Expiry)
	if extra.Access != nil {
		ti.Access = append([]Access{}, *extra.Access...)
	}
	for k, v := range all {
		switch k {
		case "iss", "sub", "aud", "jti", "iat", "nbf", "exp", "access":
			continue
		}
		if ti.Other == nil {
			ti.Other = map[string]string{}
		}
		ti.Other[k] = string(v)
	}
	return ti, nil
}

func numericTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time().UTC()
}

func x5cChain(raw string) ([]Cert, []*x509.Certificate, error) {
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, nil, fmt.Errorf("token header: %w", err)
	}
	var hdr struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		return nil, nil, fmt.Errorf("token header: %w", err)
	}
	var out []Cert
	var certs []*x509.Certificate
	for i, s := range hdr.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, nil, fmt.Errorf("token header x5c[%d]: %w", i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("token header x5c[%d]: %w", i, err)
		}
		certs = append(certs, c)
		out = append(out, Cert{Subject: c.Subject.String(), Issuer: c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()})
	}
	return out, certs, nil
}

// Write describes the token for a person, with expiry and validity relative to now.
func (ti *TokenInfo) Write(w io.Writer, now time.Time) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "  %-5s %s\n", k+":", v) }
	b.WriteString("token header and claims (decoded WITHOUT verifying the signature):\n")
	line("alg", orNone(ti.Algorithm))
	line("kid", orNone(ti.KeyID))
	if ti.Type != "" {
		line("typ", printable(ti.Type))
	}
	if len(ti.X5C) == 0 {
		line("x5c", "(none)")
	} else {
		line("x5c", fmt.Sprintf("%d certificate(s), leaf first", len(ti.X5C)))
		for i, c := range ti.X5C {
			state := ""
			switch {
			case now.After(c.NotAfter):
				state = " EXPIRED"
			case now.Before(c.NotBefore):
				state = " NOT YET VALID"
			}
			fmt.Fprintf(&b, "    [%d] subject %q, issuer %q, valid %s to %s%s\n", i, printable(c.Subject), printable(c.Issuer),
				c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), state)
		}
	}
	line("iss", orNone(ti.Issuer))
	line("sub", orNone(ti.Subject))
	line("aud", orNone(strings.Join(ti.Audience, ", ")))
	if ti.ID != "" {
		line("jti", printable(ti.ID))
	}
	if !ti.IssuedAt.IsZero() {
		line("iat", ti.IssuedAt.Format(time.RFC3339))
	}
	if !ti.NotBefore.IsZero() {
		nbf := ti.NotBefore.Format(time.RFC3339)
		if ti.NotBefore.After(now) {
			nbf += fmt.Sprintf(" (NOT YET VALID: %s from now)", ti.NotBefore.Sub(now).Round(time.Second))
		}
		line("nbf", nbf)
	}
	switch {
	case ti.Expiry.IsZero():
		line("exp", "(none: the token never expires)")
	case ti.Expiry.After(now):
		line("exp", fmt.Sprintf("%s (%s left)", ti.Expiry.Format(time.RFC3339), ti.Expiry.Sub(now).Round(time.Second)))
	default:
		line("exp", fmt.Sprintf("%s (EXPIRED %s ago)", ti.Expiry.Format(time.RFC3339), now.Sub(ti.Expiry).Round(time.Second)))
	}
	switch {
	case ti.Access == nil:
		line("access", "(no access claim)")
	case len(ti.Access) == 0:
		line("access", "(empty: grants nothing)")
	default:
		b.WriteString("  access:\n")
		for _, a := range ti.Access {
			fmt.Fprintf(&b, "    %s\n", printable(a.String()))
		}
	}
	keys := make([]string, 0, len(ti.Other))
	for k := range ti.Other {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		line(printable(k), printable(ti.Other[k]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return printable(s)
}
