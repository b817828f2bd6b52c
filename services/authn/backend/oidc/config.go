package oidc

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/loopback"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

// Config configures the workload identity backend: the issuers whose tokens it trusts.
type Config struct {
	// Issuers are the trusted token issuers. A token's iss picks its entry; a token from an
	// issuer not listed is not this backend's (the next workload backend is asked).
	Issuers []Issuer `yaml:"issuers"`
	// Timeout bounds one discovery or key set request (default 10s).
	Timeout config.Duration `yaml:"timeout"`
	// JWKSRefreshInterval is how old cached keys may get before a token's check refetches them
	// in the background, so a key the issuer withdrew stops working (default 15m). While the
	// issuer is unreachable the cached keys keep working.
	JWKSRefreshInterval config.Duration `yaml:"jwks_refresh_interval"`
	// JWKSMinRefreshInterval is the least time between two requests for an issuer's keys,
	// however many tokens with unknown key IDs arrive (default 10s).
	JWKSMinRefreshInterval config.Duration `yaml:"jwks_min_refresh_interval"`

	// HTTPClient fetches discovery documents and key sets for every issuer, as it is (ca_file
	// is then not read). Set by code (tests, embedding); nil: a client with Timeout and the
	// system roots plus each issuer's ca_file.
	HTTPClient *http.Client `yaml:"-"`
}

// Issuer is one trusted issuer and what its tokens must say and map to.
type Issuer struct {
	// Issuer is the iss claim, exactly (https; http only for loopback addresses).
	Issuer string `yaml:"issuer"`
	// JWKSURL is where the issuer publishes its keys; empty: from OpenID Connect discovery
	// (<issuer>/.well-known/openid-configuration).
	JWKSURL string `yaml:"jwks_url"`
	// CAFile is a PEM bundle trusted, besides the system roots, for this issuer's discovery
	// and keys (a Kubernetes API server's CA).
	CAFile string `yaml:"ca_file"`
	// Audiences: a token's aud must contain one of them, so a token minted for another
	// service does not work here. Required.
	Audiences []string `yaml:"audiences"`
	// Algorithms are the signature algorithms accepted (asymmetric only); default: all of
	// RS256/384/512, PS256/384/512, ES256/384/512 and EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// MaxTokenAge refuses a token issued (iat) longer ago than this even when its exp is far
	// off (Kubernetes may extend exp to a year); a token without iat is then refused too.
	// Default 24h.
	MaxTokenAge config.Duration `yaml:"max_token_age"`
	// Claims a token must carry: claim path → one pattern or a list of them (any matches).
	// A pattern is a path.Match glob (`*` does not cross `/`); without metacharacters it is
	// an equality test. Values are compared as strings (true → "true", 42 → "42"); an array
	// claim matches when one of its elements does.
	Claims map[string]Strings `yaml:"claims"`
	// Subject is the claim path of the identity's subject (e.g. sub). Required.
	Subject string `yaml:"subject"`
	// Groups are claim paths whose values (a string or an array of them) become groups.
	Groups Strings `yaml:"groups"`
	// Labels maps a label name to the claim path of its values: a string, number or boolean
	// gives one value, an array of them every non-empty element (once, in claim order); a
	// label whose claim is missing, an object or an empty array is not set.
	Labels map[string]string `yaml:"labels"`
}

// Strings is one string or a list of them in YAML.
type Strings = claims.Strings

// asymmetric are the signature algorithms a workload token may use: the key comes from the
// issuer's published key set, so an algorithm whose key is a shared secret (HS*) would mean
// verifying with a public key as the secret, and none means no signature at all.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate reports every problem at once, without network or file access.
func (c *Config) Validate() []error {
	var p config.Problems
	if len(c.Issuers) == 0 {
		p.Addf("issuers", "at least one issuer is required")
	}
	for _, d := range []struct {
		name string
		v    config.Duration
	}{{"timeout", c.Timeout}, {"jwks_refresh_interval", c.JWKSRefreshInterval}, {"jwks_min_refresh_interval", c.JWKSMinRefreshInterval}} {
		if d.v < 0 {
			p.Addf(d.name, "must not be negative")
		}
	}
	seen := map[string]bool{}
	for i, is := range c.Issuers {
		at := fmt.Sprintf("issuers[%d]", i)
		is.validate(at, &p)
		if is.Issuer != "" && seen[is.Issuer] {
			p.Addf(at+".issuer", "%q is listed twice", is.Issuer)
		}
		seen[is.Issuer] = true
	}
	return p.Errs()
}

func (is *Issuer) validate(at string, p *config.Problems) {
	if is.Issuer == "" {
		p.Addf(at+".issuer", "is required")
	} else if err := checkURL(is.Issuer); err != nil {
		p.Addf(at+".issuer", "%v", err)
	}
	if is.JWKSURL != "" {
		if err := checkURL(is.JWKSURL); err != nil {
			p.Addf(at+".jwks_url", "%v", err)
		}
	}
	if len(is.Audiences) == 0 {
		p.Addf(at+".audiences", "at least one audience is required (a token minted for another service must not work here)")
	}
	for _, a := range is.Audiences {
		if a == "" {
			p.Addf(at+".audiences", "an audience must not be empty")
		}
	}
	for _, a := range is.Algorithms {
		switch {
		case slices.Contains(asymmetric, a):
		case strings.EqualFold(a, "none"), strings.HasPrefix(strings.ToUpper(a), "HS"):
			p.Addf(at+".algorithms", "%q is not allowed: only asymmetric algorithms (%s)", a, strings.Join(asymmetric, ", "))
		default:
			p.Addf(at+".algorithms", "unknown algorithm %q (allowed: %s)", a, strings.Join(asymmetric, ", "))
		}
	}
	if is.MaxTokenAge < 0 {
		p.Addf(at+".max_token_age", "must not be negative")
	}
	is.mapping().Validate(at, p)
}

// checkURL accepts https URLs, and http ones only on loopback hosts (a test issuer): key sets
// fetched in the clear could be swapped for an attacker's.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not have a query, fragment or user info", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback.Host(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (http only for loopback addresses)", s)
	default:
		return fmt.Errorf("%q must use https", s)
	}
}

// mapping is the issuer's claim mapping, the part of its keys SSO sign-in shares.
func (is *Issuer) mapping() claims.Spec {
	return claims.Spec{
		Subject: is.Subject, Groups: is.Groups, Labels: is.Labels, Claims: is.Claims,
		SubjectHint: "(the claim path of the subject, e.g. sub)",
	}
}
