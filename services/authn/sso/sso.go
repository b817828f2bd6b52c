// Package sso is the OpenID Connect relying party people sign in with: the company IdP's
// authorization code flow with PKCE (S256), state and nonce; the ID token's checks and its
// mapping to an identity (backend "sso"); revalidation of an account with its refresh token,
// kept encrypted at rest; and OIDC Back-Channel Logout 1.0 tokens. It has no pages: the
// sign-in pages and the device flow call it.
//
// A sign-in:
//
//	req, _ := sso.NewAuthRequest()             // keep it in the browser's (encrypted) cookie
//	u, _ := p.AuthCodeURL(ctx, req)            // redirect the browser there
//	// … the IdP redirects back to Options.RedirectURL with code and state …
//	if err := req.CheckState(q.Get("state")); err != nil { … }
//	in, err := p.Exchange(ctx, q.Get("code"), req) // in.Identity, in.SealedRefreshToken
//
// and every revalidate_interval, p.Revalidate(ctx, subject, sealed): a new sealed token, or
// ErrAccountEnded (end the sessions), or ErrUnavailable (keep them, ask later).
package sso

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/jwks"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

// Backend is Identity.Backend of a person signed in through the IdP.
const Backend = "sso"

const (
	defaultTimeout = 10 * time.Second
	// skew is the clock difference tolerated with the IdP on iat (and nbf).
	skew = time.Minute
	// maxTokenAge: an ID token or logout token issued longer ago than this is refused; both
	// are used the moment they are issued.
	maxTokenAge = 10 * time.Minute
	maxToken    = 64 << 10
)

// asymmetric are the only signature algorithms accepted, whatever the IdP lists: none is no
// signature and HS* would verify with the client secret the IdP and we share.
var asymmetric = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384,
	jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// Options are what the server, not the config file, decides.
type Options struct {
	// RedirectURL is the callback registered at the IdP (redirect_uri). Required.
	RedirectURL string
	// HTTPClient reaches the IdP as it is (ca_file is then not read); nil: the system roots
	// plus ca_file, a 10s timeout.
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
}

// Provider is the relying party for one IdP. Safe for concurrent use.
type Provider struct {
	cfg      Config
	redirect string
	client   *http.Client
	now      func() time.Time
	log      *slog.Logger
	mapping  *claims.Mapping
	sealer   *Sealer
	secret   string      // client_secret_basic
	signer   jose.Signer // private_key_jwt
	keys     keySet

	mu     sync.Mutex
	disc   *discovery // nil until the IdP answered
	discAt time.Time

	jtiMu sync.Mutex
	jtis  map[string]time.Time // logout tokens seen, until they are too old to pass anyway
}

type discovery struct {
	Issuer      string   `json:"issuer"`
	AuthURL     string   `json:"authorization_endpoint"`
	TokenURL    string   `json:"token_endpoint"`
	JWKSURI     string   `json:"jwks_uri"`
	IDTokenAlgs []string `json:"id_token_signing_alg_values_supported"`
	algs        []jose.SignatureAlgorithm
}

// New checks cfg (with its defaults) and reads its files. It does not reach the IdP: the
// discovery document is fetched when first needed, so an IdP that is down does not stop
// Portcullis from starting.
func New(cfg Config, opt Options) (*Provider, error) {
	cfg.Defaults()
	errs := cfg.Validate()
	if opt.RedirectURL == "" {
		errs = append(errs, errors.New("redirect URL: is required"))
	} else if u, err := url.Parse(opt.RedirectURL); err != nil || !u.IsAbs() || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("redirect URL %q: an absolute URL without fragment is required", opt.RedirectURL))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sso: %w", errors.Join(errs...))
	}
	p := &Provider{
		cfg: cfg, redirect: opt.RedirectURL, client: opt.HTTPClient, now: opt.Now, log: opt.Logger,
		mapping: cfg.mapping().Compile(), jtis: map[string]time.Time{},
	}
	p.keys.p = p
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pool, err := readCAFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("sso: ca_file: %w", err)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		p.client = &http.Client{Transport: tr, Timeout: defaultTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return checkURL(req.URL.Scheme + "://" + req.URL.Host) // no https → http downgrade
			}}
	}
	key, err := readKey(cfg.EncryptionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("sso: encryption_key_file: %w", err)
	}
	if p.sealer, err = NewSealer(key); err != nil {
		return nil, err
	}
	if cfg.ClientSecretFile != "" {
		if p.secret, err = readSecret(cfg.ClientSecretFile); err != nil {
			return nil, fmt.Errorf("sso: client_secret_file: %w", err)
		}
	} else {
		if p.signer, err = assertionSigner(cfg.PrivateKeyJWT); err != nil {
			return nil, fmt.Errorf("sso: private_key_jwt: %w", err)
		}
	}
	return p, nil
}

// Config is the configuration in use, defaults applied.
func (p *Provider) Config() Config { return p.cfg }

// Sealer is the refresh tokens' encryption (for a store migrating or re-reading tokens).
func (p *Provider) Sealer() *Sealer { return p.sealer }

func assertionSigner(c *PrivateKeyJWT) (jose.Signer, error) {
	key, err := readSigningKey(c.KeyFile)
	if err != nil {
		return nil, err
	}
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *rsa.PrivateKey:
		alg = jose.RS256
	case *ecdsa.PrivateKey:
		alg = map[int]jose.SignatureAlgorithm{256: jose.ES256, 384: jose.ES384, 521: jose.ES512}[k.Curve.Params().BitSize]
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	}
	kid := c.KeyID
	if kid == "" {
		if kid, err = Thumbprint(key.Public()); err != nil {
			return nil, err
		}
	}
	return jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
}

// Thumbprint is a public key's RFC 7638 SHA-256 thumbprint, base64url: the kid a
// private_key_jwt assertion carries unless private_key_jwt.key_id says otherwise.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// discoveryMaxAge: the discovery document is re-read when older, so algorithms or
// endpoints the IdP changes are followed; while it cannot be re-read the old one serves.
const discoveryMaxAge = time.Hour

// discover returns the IdP's discovery document, fetching it the first time, after failures
// and when older than discoveryMaxAge. The document must name the issuer exactly (OpenID
// Connect Discovery 1.0 §4.3).
func (p *Provider) discover(ctx context.Context) (*discovery, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil && p.now().Sub(p.discAt) < discoveryMaxAge {
		return p.disc, nil
	}
	d, err := p.fetchDiscovery(ctx)
	if err != nil {
		if p.disc != nil {
			p.discAt = p.now() // ask again in an hour, not on every request
			p.log.WarnContext(ctx, "sso: re-reading the IdP's discovery document failed; the old one serves", "error", err)
			return p.disc, nil
		}
		return nil, err
	}
	p.disc, p.discAt = d, p.now()
	return d, nil
}

func (p *Provider) fetchDiscovery(ctx context.Context) (*discovery, error) {
	body, err := p.get(ctx, strings.TrimSuffix(p.cfg.Issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("%w: discovery: %w", ErrUnavailable, err)
	}
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: discovery document: %w", ErrUnavailable, err)
	}
	if d.Issuer != p.cfg.Issuer {
		return nil, fmt.Errorf("%w: discovery document names issuer %q, want %q", ErrUnavailable, d.Issuer, p.cfg.Issuer)
	}
	for name, u := range map[string]string{"authorization_endpoint": d.AuthURL, "token_endpoint": d.TokenURL, "jwks_uri": d.JWKSURI} {
		if err := checkEndpoint(u); err != nil {
			return nil, fmt.Errorf("%w: discovery document: %s: %w", ErrUnavailable, name, err)
		}
	}
	if len(d.IDTokenAlgs) == 0 {
		d.IDTokenAlgs = []string{"RS256"} // OpenID Connect Discovery 1.0 §3: RS256 is the default
	}
	for _, a := range d.IDTokenAlgs {
		if slices.Contains(asymmetric, jose.SignatureAlgorithm(a)) {
			d.algs = append(d.algs, jose.SignatureAlgorithm(a))
		}
	}
	if len(d.algs) == 0 {
		return nil, fmt.Errorf("%w: the IdP signs ID tokens with none of %v", ErrUnavailable, asymmetric)
	}
	return &d, nil
}

func (p *Provider) get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	return jwks.Get(ctx, p.client, u)
}

// AuthRequest is one sign-in's secrets, kept by the caller (the browser's sign-in cookie,
// sealed) from AuthCodeURL to the callback. Each is 256 random bits, base64url.
type AuthRequest struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE code_verifier (RFC 7636: 43 characters)
}

// NewAuthRequest draws a fresh state, nonce and PKCE verifier from crypto/rand.
func NewAuthRequest() AuthRequest {
	return AuthRequest{State: random(), Nonce: random(), Verifier: random()}
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CheckState compares the callback's state with the request's in constant time.
func (r AuthRequest) CheckState(got string) error {
	if r.State == "" || subtle.ConstantTimeCompare([]byte(r.State), []byte(got)) != 1 {
		return ErrState
	}
	return nil
}

// Challenge is the PKCE S256 code_challenge of the verifier.
func (r AuthRequest) Challenge() string {
	h := sha256.Sum256([]byte(r.Verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// AuthCodeURL is where to send the browser: the authorization request of OpenID Connect
// Core §3.1.2.1 (response_type code, the scopes, redirect_uri, state, nonce) with PKCE S256.
// extra adds parameters such as login_hint or prompt; it cannot replace these.
func (p *Provider) AuthCodeURL(ctx context.Context, r AuthRequest, extra url.Values) (string, error) {
	if r.State == "" || r.Nonce == "" || len(r.Verifier) < 43 {
		return "", errors.New("sso: an AuthRequest from NewAuthRequest is required")
	}
	d, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(d.AuthURL)
	if err != nil {
		return "", fmt.Errorf("%w: authorization_endpoint: %w", ErrUnavailable, err)
	}
	q := u.Query() // an endpoint may carry parameters of its own
	for k, vs := range extra {
		q[k] = slices.Clone(vs)
	}
	for k, v := range map[string]string{
		"response_type": "code", "client_id": p.cfg.ClientID, "redirect_uri": p.redirect,
		"scope": strings.Join(p.cfg.Scopes, " "), "state": r.State, "nonce": r.Nonce,
		"code_challenge": r.Challenge(), "code_challenge_method": "S256",
	} {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SignIn is a person signed in.
type SignIn struct {
	// Identity is the mapped person, Backend "sso", ValidUntil unset (the session decides).
	Identity identity.Identity
	// IDPSubject and SessionID are the ID token's sub and sid: what a back-channel logout
	// token names (sid is "" when the IdP sends none).
	IDPSubject, SessionID string
	// SealedRefreshToken is the IdP's refresh token sealed for Identity.Subject.
	SealedRefreshToken []byte
}

// Exchange redeems the callback's code with the request's PKCE verifier and checks the ID
// token against the request's nonce.
func (p *Provider) Exchange(ctx context.Context, code string, r AuthRequest) (*SignIn, error) {
	if code == "" {
		return nil, fmt.Errorf("%w: no code", ErrExchange)
	}
	tok, err := p.token(ctx, url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {p.redirect}, "code_verifier": {r.Verifier},
	})
	if err != nil {
		var oe *OAuthError
		if errors.As(err, &oe) && oe.Status < 500 {
			return nil, fmt.Errorf("%w: %w", ErrExchange, err)
		}
		return nil, err
	}
	if tok.IDToken == "" {
		return nil, tokenErr("the token response has no ID token")
	}
	id, err := p.VerifyIDToken(ctx, tok.IDToken, r.Nonce)
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		return nil, ErrNoRefreshToken
	}
	return &SignIn{
		Identity: id.Identity, IDPSubject: id.Subject, SessionID: id.SessionID,
		SealedRefreshToken: p.sealer.Seal(id.Identity.Subject, tok.RefreshToken),
	}, nil
}

type tokenResponse struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// token calls the token endpoint with the client's authentication. A refusal is an
// *OAuthError (wrapping ErrUnavailable when the IdP failed, 5xx or 429); no response text
// is kept but the error code.
func (p *Provider) token(ctx context.Context, form url.Values) (*tokenResponse, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	if p.signer != nil {
		assertion, err := p.assertion(d.TokenURL)
		if err != nil {
			return nil, err
		}
		form.Set("client_id", p.cfg.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if p.signer == nil {
		// RFC 6749 §2.3.1: both form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(p.secret))
	}
	res, err := p.client.Do(req)
	if err != nil {
		// The URL is ours; the request's body (the code, a refresh token) is not in err.
		return nil, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, jwks.MaxDocument))
	if err != nil {
		return nil, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		oe := &OAuthError{Code: oauthCode(e.Error), Status: res.StatusCode}
		if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, oe)
		}
		return nil, oe
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, fmt.Errorf("%w: token endpoint: malformed response", ErrUnavailable)
	}
	return &tok, nil
}

// assertion is a private_key_jwt client assertion (RFC 7523 §3) for the token endpoint.
func (p *Provider) assertion(aud string) (string, error) {
	now := p.now()
	return jwt.Signed(p.signer).Claims(jwt.Claims{
		Issuer: p.cfg.ClientID, Subject: p.cfg.ClientID, Audience: jwt.Audience{aud},
		ID: random(), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
}

// IDToken is a verified ID token.
type IDToken struct {
	Identity  identity.Identity
	Subject   string // sub, the IdP's own name for the person
	SessionID string // sid
	Expiry    time.Time
}

// VerifyIDToken checks an ID token as OpenID Connect Core §3.1.3.7 asks: signature with an
// algorithm the IdP lists (never none or HS*) and a key it publishes, iss, aud (our client,
// and azp when there are several audiences or azp is present), exp, iat within a skew and not
// older than 10 minutes, nonce (when nonce is not "", as after a refresh), then the claims
// requirements and the mapping. Errors wrap ErrInvalidToken, ErrNotAllowed or ErrUnavailable.
func (p *Provider) VerifyIDToken(ctx context.Context, raw, nonce string) (*IDToken, error) {
	all, std, err := p.verifyJWT(ctx, raw)
	if err != nil {
		return nil, err
	}
	if std.Expiry == nil {
		return nil, tokenErr("no exp")
	}
	var extra struct {
		Nonce *string `json:"nonce"`
		AZP   *string `json:"azp"`
		SID   string  `json:"sid"`
	}
	if err := remarshal(all, &extra); err != nil {
		return nil, tokenErr("malformed claims")
	}
	if len(std.Audience) > 1 && extra.AZP == nil {
		return nil, tokenErr("several audiences and no azp")
	}
	if extra.AZP != nil && *extra.AZP != p.cfg.ClientID {
		return nil, tokenErr("azp is another client")
	}
	if nonce != "" && (extra.Nonce == nil || subtle.ConstantTimeCompare([]byte(*extra.Nonce), []byte(nonce)) != 1) {
		return nil, tokenErr("nonce mismatch")
	}
	if std.Subject == "" {
		return nil, tokenErr("no sub")
	}
	id, err := p.identity(all)
	if err != nil {
		return nil, err
	}
	return &IDToken{Identity: id, Subject: std.Subject, SessionID: extra.SID, Expiry: std.Expiry.Time()}, nil
}

// identity maps verified claims.
func (p *Provider) identity(all map[string]any) (identity.Identity, error) {
	id, err := p.mapping.Identity(all)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	if err := identity.CheckBareName(id.Subject); err != nil {
		return identity.Identity{}, fmt.Errorf("%w: subject claim %s: %w", ErrNotAllowed, p.cfg.Subject, err)
	}
	id.Backend = Backend
	return id, nil
}

// verifyJWT checks what ID and logout tokens share: one signature by the IdP with an allowed
// algorithm, iss, aud containing our client, exp when present, iat present, not in the
// future and recent, nbf.
func (p *Provider) verifyJWT(ctx context.Context, raw string) (map[string]any, *jwt.Claims, error) {
	if len(raw) > maxToken {
		return nil, nil, tokenErr("too large")
	}
	d, err := p.discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	jws, err := jose.ParseSignedCompact(raw, d.algs)
	if err != nil {
		return nil, nil, tokenErr("malformed, or signed with an algorithm the IdP does not list")
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, tokenErr("not exactly one signature")
	}
	payload, err := p.keys.verify(ctx, d.JWKSURI, jws)
	if err != nil {
		return nil, nil, err
	}
	all, err := claims.Decode(payload)
	if err != nil {
		return nil, nil, tokenErr("malformed claims")
	}
	var std jwt.Claims
	if err := remarshal(all, &std); err != nil {
		return nil, nil, tokenErr("malformed registered claims")
	}
	now := p.now()
	switch {
	case std.Issuer != p.cfg.Issuer:
		return nil, nil, tokenErr("iss is not the issuer")
	case !std.Audience.Contains(p.cfg.ClientID):
		return nil, nil, tokenErr("aud is not our client")
	case std.Expiry != nil && !now.Before(std.Expiry.Time()): // exp gets no skew
		return nil, nil, tokenErr("expired")
	case std.IssuedAt == nil:
		return nil, nil, tokenErr("no iat")
	case now.Add(skew).Before(std.IssuedAt.Time()):
		return nil, nil, tokenErr("issued in the future (iat)")
	case now.Sub(std.IssuedAt.Time()) > maxTokenAge+skew:
		return nil, nil, tokenErr("issued too long ago (iat)")
	case std.NotBefore != nil && now.Add(skew).Before(std.NotBefore.Time()):
		return nil, nil, tokenErr("not valid yet (nbf)")
	}
	return all, &std, nil
}

func remarshal(in map[string]any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Revalidation is an account the IdP still vouches for.
type Revalidation struct {
	// SealedRefreshToken replaces the stored one: the IdP may rotate refresh tokens and then
	// refuses the old one.
	SealedRefreshToken []byte
	// Identity is the person as the refreshed ID token maps now (groups may have changed);
	// nil when the IdP sent no ID token with the refresh.
	Identity *identity.Identity
}

// Revalidate asks the IdP, with the refresh token sealed for subject, whether the account is
// still active. ErrAccountEnded: the IdP refused the token (invalid_grant), the refreshed ID
// token no longer meets the claims or names someone else: end the person's sessions.
// ErrUnavailable: the IdP could not say (down, a 5xx, a refusal not about the account such as
// invalid_client): keep them and ask again later. ErrUnsealable: the stored token does not
// open (another encryption key): the session cannot be revalidated, end it. A refreshed ID
// token that fails a check other than the claims (a key the IdP has not published yet) does
// not fail the revalidation: the identity is then nil.
//
// Two replicas revalidating the same rotating token at once: the second gets invalid_grant;
// callers revalidate a session from one place at a time.
func (p *Provider) Revalidate(ctx context.Context, subject string, sealed []byte) (*Revalidation, error) {
	rt, err := p.sealer.Open(subject, sealed)
	if err != nil {
		return nil, err
	}
	tok, err := p.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if err != nil {
		var oe *OAuthError
		switch {
		case errors.Is(err, ErrUnavailable):
			return nil, err
		case errors.As(err, &oe) && oe.Code == "invalid_grant":
			return nil, fmt.Errorf("%w: %w", ErrAccountEnded, err)
		default:
			p.log.WarnContext(ctx, "sso: the IdP refused a refresh for a reason not about the account; sessions kept", "error", err)
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	out := &Revalidation{}
	if tok.IDToken != "" {
		id, err := p.VerifyIDToken(ctx, tok.IDToken, "")
		switch {
		case errors.Is(err, ErrNotAllowed):
			return nil, fmt.Errorf("%w: %w", ErrAccountEnded, err)
		case err != nil:
			// The refresh itself is the IdP's answer (over TLS, from its token endpoint:
			// OpenID Connect Core §3.1.3.7), and the IdP may have rotated the refresh token:
			// failing here would lose the new one. The identity is just not updated.
			p.log.WarnContext(ctx, "sso: the refreshed ID token failed a check; the account counts as active, its groups are not updated", "error", err)
		case id.Identity.Subject != subject:
			return nil, fmt.Errorf("%w: the refreshed ID token names another subject", ErrAccountEnded)
		default:
			out.Identity = &id.Identity
		}
	}
	if tok.RefreshToken != "" {
		rt = tok.RefreshToken
	}
	out.SealedRefreshToken = p.sealer.Seal(subject, rt)
	return out, nil
}

// BackChannelLogoutEvent is the member a logout token's events claim must hold.
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Logout is a verified back-channel logout: end the sessions of the IdP's subject, or of its
// session id. At least one is set.
type Logout struct {
	Subject   string // sub: the IdP's name for the person (SignIn.IDPSubject)
	SessionID string // sid (SignIn.SessionID)
}

// VerifyLogoutToken checks an OIDC Back-Channel Logout 1.0 logout token (§2.6): signature,
// iss, aud, iat (recent), exp when present, a jti not seen before, the back-channel logout
// event, sub and/or sid, and no nonce (so an ID token cannot pass for one).
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string) (*Logout, error) {
	all, std, err := p.verifyJWT(ctx, raw)
	if err != nil {
		return nil, err
	}
	var extra struct {
		SID    string                     `json:"sid"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := remarshal(all, &extra); err != nil {
		return nil, tokenErr("malformed claims")
	}
	if ev, ok := extra.Events[BackChannelLogoutEvent]; !ok || len(ev) == 0 || ev[0] != '{' {
		return nil, tokenErr("no back-channel logout event")
	}
	if _, ok := all["nonce"]; ok {
		return nil, tokenErr("a logout token carries no nonce")
	}
	if std.Subject == "" && extra.SID == "" {
		return nil, tokenErr("neither sub nor sid")
	}
	if std.ID == "" {
		return nil, tokenErr("no jti")
	}
	if !p.firstUse(std.ID, std.IssuedAt.Time()) {
		return nil, tokenErr("jti seen before (replay)")
	}
	return &Logout{Subject: std.Subject, SessionID: extra.SID}, nil
}

// firstUse remembers a logout token's jti until it is too old to be accepted anyway. Per
// replica: a replay at another replica ends sessions already ended.
func (p *Provider) firstUse(jti string, iat time.Time) bool {
	p.jtiMu.Lock()
	defer p.jtiMu.Unlock()
	now := p.now()
	for k, until := range p.jtis {
		if now.After(until) {
			delete(p.jtis, k)
		}
	}
	if _, seen := p.jtis[jti]; seen {
		return false
	}
	p.jtis[jti] = iat.Add(maxTokenAge + 2*skew)
	return true
}
