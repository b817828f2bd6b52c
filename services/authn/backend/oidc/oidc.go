// Package oidc is the workload identity backend: a CI job or Kubernetes pod logs in with the
// signed JWT its platform gives it (GitHub Actions, GitLab id_tokens, projected service-account
// tokens) as the password, and no secret is stored anywhere.
//
// A token is accepted when it is signed (asymmetric algorithms only) by a key its trusted
// issuer publishes, is for one of the configured audiences, has not expired, was issued (iat,
// required) no longer than max_token_age ago, and carries the required claims; its claims
// then map to the identity's subject, groups and labels, and its end (exp, or iat +
// max_token_age if sooner) becomes Identity.ValidUntil, which the login cache respects.
// Signatures are checked by go-jose; keys are fetched from the issuer (jwks_url or OpenID
// Connect discovery) when a token needs them and cached (see keySet).
//
// Claims are addressed by dotted paths; a claim whose name contains a dot is written as is,
// the longest literal key winning at each level ("kubernetes.io.namespace"). Values compare
// as strings, so GitLab's "false" and a JSON false are the same.
//
// The backend claims every JWT-shaped password (authn.Backend.Claiming), so the chain never
// sends one to a password backend's bcrypt. It does not resolve: a workload login gets no
// refresh token, the job logs in again with a fresh token.
package oidc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/portcullis-dev/portcullis/internal/jwsshape"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

const (
	defaultTimeout         = 10 * time.Second
	defaultRefreshInterval = 15 * time.Minute
	defaultMinRefresh      = 10 * time.Second
	defaultMaxTokenAge     = 24 * time.Hour
	// skew is the clock difference tolerated between the issuer and us on nbf and iat, the
	// times a freshly minted token may be just ahead of our clock. exp gets none: a token is
	// never accepted, nor cached, past its own expiry.
	skew = time.Minute
	// maxTokenBytes bounds what is parsed; real workload tokens are one to a few kilobytes.
	maxTokenBytes = 64 << 10
)

type backend struct {
	authn.UnimplementedBackend
	issuers map[string]*issuer
	algs    []jose.SignatureAlgorithm // every issuer's, for parsing before the issuer is known
	now     func() time.Time
	log     *slog.Logger
	cancel  context.CancelFunc
	run     runner
}

type issuer struct {
	name      string
	audiences []string
	algs      []string
	maxAge    time.Duration
	mapping   *claims.Mapping
	keys      *keySet
}

// No Resolve: a workload token is presented afresh each time, there is nothing to re-read.
var _ authn.Backend = (*backend)(nil)

// Open checks the configuration and reads each issuer's ca_file. It does not reach the
// issuers: keys are fetched when the first token arrives, so an issuer that is down does not
// stop Portcullis from starting.
func (c *Config) Open(ctx context.Context, deps authn.Deps) (authn.Backend, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("oidc: %w", errors.Join(errs...))
	}
	b := &backend{issuers: map[string]*issuer{}, now: deps.Now, log: deps.Logger}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	timeout := orDefault(c.Timeout.D(), defaultTimeout)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	for _, ic := range c.Issuers {
		client := c.HTTPClient
		if client == nil {
			var err error
			if client, err = newClient(ic.CAFile, timeout); err != nil {
				cancel()
				return nil, fmt.Errorf("oidc: issuer %q: %w", ic.Issuer, err)
			}
		}
		is := &issuer{
			name:      ic.Issuer,
			audiences: slices.Clone(ic.Audiences),
			algs:      slices.Clone(ic.Algorithms),
			maxAge:    orDefault(ic.MaxTokenAge.D(), defaultMaxTokenAge),
			mapping:   ic.mapping().Compile(),
			keys: &keySet{
				issuer: ic.Issuer, jwksURL: ic.JWKSURL, client: client, timeout: timeout,
				minGap: orDefault(c.JWKSMinRefreshInterval.D(), defaultMinRefresh),
				maxAge: orDefault(c.JWKSRefreshInterval.D(), defaultRefreshInterval),
				now:    b.now, log: b.log, bg: bg, run: &b.run, withdrawn: deps.Changed,
			},
		}
		if len(is.algs) == 0 {
			is.algs = asymmetric
		}
		for _, a := range is.algs {
			if !slices.Contains(b.algs, jose.SignatureAlgorithm(a)) {
				b.algs = append(b.algs, jose.SignatureAlgorithm(a))
			}
		}
		b.issuers[ic.Issuer] = is
	}
	return b, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// newClient trusts the system roots plus caFile, and follows redirects only to URLs a key
// set may be fetched from (no https → http downgrade).
func newClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return checkURL(req.URL.String())
		},
	}, nil
}

// Claiming implements authn.Backend: workload JWTs are this backend's own credentials.
func (b *backend) Claiming() bool { return true }

// ClaimsCredential implements authn.Backend: every JWT-shaped password is this
// kind of backend's, whichever issuer it names, so none reaches a password backend.
func (b *backend) ClaimsCredential(_ context.Context, c authn.Credentials) bool {
	return jwsshape.WithAlg(string(c.Password))
}

// AcceptsSubjectTokens implements authn.Backend: a workload JWT names its caller by itself,
// so it may be exchanged for a registry token without a user name (RFC 8693).
func (b *backend) AcceptsSubjectTokens() bool { return true }

// Authenticate implements authn.Backend. The username is ignored (docker login needs
// one); the password is the token. A token from an issuer not configured here is ErrNoMatch,
// so another workload backend may know it; every other refusal is ErrInvalidCredentials, and
// ErrUnavailable when the issuer's keys cannot be had.
func (b *backend) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	raw := string(cr.Password)
	if !jwsshape.WithAlg(raw) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	if len(raw) > maxTokenBytes {
		return identity.Identity{}, b.refuse(ctx, "", "token too large", slog.LevelDebug)
	}
	// Only allowed algorithms parse: "none" and HS* never get as far as a key.
	jws, err := jose.ParseSignedCompact(raw, b.algs)
	if err != nil {
		return identity.Identity{}, b.refuse(ctx, "", "malformed token or algorithm not allowed", slog.LevelDebug)
	}
	if len(jws.Signatures) != 1 {
		return identity.Identity{}, b.refuse(ctx, "", "not exactly one signature", slog.LevelDebug)
	}
	// The issuer picks the keys, so it is read before the signature is checked; nothing else
	// is trusted until then.
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return identity.Identity{}, b.refuse(ctx, "", "malformed claims", slog.LevelDebug)
	}
	is, ok := b.issuers[unverified.Issuer]
	if !ok {
		return identity.Identity{}, authn.ErrNoMatch
	}
	alg := jws.Signatures[0].Header.Algorithm
	if !slices.Contains(is.algs, alg) {
		return identity.Identity{}, b.refuse(ctx, is.name, "algorithm "+alg+" not allowed for this issuer", slog.LevelDebug)
	}
	payload, err := is.keys.verify(ctx, jws, alg)
	if err != nil {
		if errors.Is(err, authn.ErrInvalidCredentials) {
			b.log.DebugContext(ctx, "workload token refused", "issuer", is.name, "reason", err.Error())
		}
		return identity.Identity{}, err
	}
	id, reason := is.identity(payload, b.now())
	if reason != "" {
		// Signed by a trusted issuer, so not noise: say why, for whoever set up the CI job.
		return identity.Identity{}, b.refuse(ctx, is.name, reason, slog.LevelInfo)
	}
	return id, nil
}

func (b *backend) refuse(ctx context.Context, iss, reason string, level slog.Level) error {
	b.log.Log(ctx, level, "workload token refused", "issuer", iss, "reason", reason)
	return fmt.Errorf("%w: %s", authn.ErrInvalidCredentials, reason)
}

// identity checks a verified token's claims at now and maps them; reason says why it is
// refused, or is empty.
func (is *issuer) identity(payload []byte, now time.Time) (identity.Identity, string) {
	var std jwt.Claims
	if err := json.Unmarshal(payload, &std); err != nil {
		return identity.Identity{}, "malformed registered claims"
	}
	claimSet, err := claims.Decode(payload)
	if err != nil {
		return identity.Identity{}, "malformed claims"
	}
	if std.Issuer != is.name {
		return identity.Identity{}, "issuer mismatch"
	}
	if !slices.ContainsFunc(is.audiences, std.Audience.Contains) {
		return identity.Identity{}, "audience not accepted"
	}
	if std.Expiry == nil {
		return identity.Identity{}, "no exp"
	}
	validUntil := std.Expiry.Time()
	if !now.Before(validUntil) {
		return identity.Identity{}, "expired"
	}
	if std.NotBefore != nil && now.Add(skew).Before(std.NotBefore.Time()) {
		return identity.Identity{}, "not valid yet (nbf)"
	}
	if std.IssuedAt != nil && now.Add(skew).Before(std.IssuedAt.Time()) {
		return identity.Identity{}, "issued in the future (iat)"
	}
	if std.IssuedAt == nil {
		return identity.Identity{}, "no iat (max_token_age needs it)"
	}
	if oldest := std.IssuedAt.Time().Add(is.maxAge); !now.Before(oldest) {
		return identity.Identity{}, "older than max_token_age"
	} else if oldest.Before(validUntil) {
		validUntil = oldest
	}
	id, err := is.mapping.Identity(claimSet)
	if err != nil {
		return identity.Identity{}, err.Error() // names the claim path, never its value
	}
	id.ValidUntil = validUntil
	return id, ""
}

// Close stops key fetches under way and waits for them.
func (b *backend) Close(context.Context) error {
	b.cancel()
	b.run.Close()
	return nil
}
