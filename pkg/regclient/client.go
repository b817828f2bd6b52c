package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxBody bounds what is read of any answer: a token answer is a few kilobytes.
const maxBody = 1 << 20

// ErrNoCredentials: the registry answers Basic, so there is no token to fetch and only
// credentials could be checked, but none were given.
var ErrNoCredentials = errors.New("the registry takes Basic credentials and none were given")

// ErrInsecureRealm: an https registry names a plain-http token endpoint. Following it would
// send the password (or refresh token) across the network in clear to whoever the registry,
// or anyone on the path to it, names; Client.InsecureRealm allows it.
var ErrInsecureRealm = errors.New("the registry is https but its realm is plain http")

// ErrUnsafeRedirect: a request carrying credentials was redirected off https or to another
// host (name or port). Go drops the Authorization header on a redirect to another domain but
// keeps it on another port or scheme, and a 307 or 308 sends the OAuth2 form, password
// included, to the new place: such redirects are not followed.
var ErrUnsafeRedirect = errors.New("refused to follow a redirect with credentials")

// ErrPlainHTTP: an https URL (or a registry given without a scheme, taken as https) was
// answered in plain HTTP. Its text says what to do; callers add the URL to use.
var ErrPlainHTTP = errors.New("the server speaks plain HTTP: use an http:// URL")

// IsPlainHTTP reports whether err says an https request was answered in plain HTTP: this
// package's ErrPlainHTTP, or net/http's own error for it (which has no type to match).
func IsPlainHTTP(err error) bool {
	return err != nil && (errors.Is(err, ErrPlainHTTP) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"))
}

// Credentials are what a caller logs in with; all empty means anonymous.
type Credentials struct {
	Username string
	Password string
	// IdentityToken is a refresh token (docker's identitytoken): used with the OAuth2
	// refresh grant instead of a password.
	IdentityToken string
}

// Empty says whether there is nothing to log in with.
func (c Credentials) Empty() bool {
	return c.Username == "" && c.Password == "" && c.IdentityToken == ""
}

// String never shows a secret, so credentials can be logged or printed by mistake safely.
func (c Credentials) String() string {
	switch {
	case c.IdentityToken != "" && c.Username == "":
		return "(identity token ***)"
	case c.IdentityToken != "":
		return fmt.Sprintf("%s (identity token ***)", c.Username)
	case c.Empty():
		return "(anonymous)"
	}
	return fmt.Sprintf("%s (password ***)", c.Username)
}

// Request is what to ask the token endpoint for.
type Request struct {
	// Scopes are the scopes asked for (repository:team/app:pull,push); when empty, the
	// challenge's own scope parameter, if any.
	Scopes      []string
	Credentials Credentials
	// Offline asks for a refresh token with the password: offline_token=true on GET,
	// access_type=offline on POST.
	Offline bool
	// OAuth sends the password grant by POST (containerd's way) instead of GET with Basic
	// (docker's way). The refresh grant always goes by POST first.
	OAuth bool
	// SubjectToken is a workload's JWT (a CI job's or pod's OIDC token, see ReadSubjectToken)
	// to exchange for the registry token with the OAuth 2.0 token exchange grant (RFC 8693),
	// by POST only; Credentials must then be empty. A secret.
	SubjectToken string
	// SubjectTokenType is the subject token's type: TokenTypeJWT (the default) or
	// TokenTypeIDToken.
	SubjectTokenType string
}

// Result is the token the realm gave and how it was fetched.
type Result struct {
	Realm   string
	Service string
	Scopes  []string
	// Token is the access token; RefreshToken is set when the endpoint returned one.
	Token        string
	RefreshToken string
	// ExpiresIn is the endpoint's expires_in in seconds; 0 when it gave none (the protocol's
	// default is 60).
	ExpiresIn int64
	IssuedAt  string
	// Method is how the token came: "GET" or "POST".
	Method string
	// Grant is "password", "refresh_token", "token_exchange" or "anonymous".
	Grant string
	// IssuedTokenType is the answer's issued_token_type (token exchange: TokenTypeAccessToken).
	IssuedTokenType string
	// GrantedScope is the answer's scope, when it names one: a token exchange names it when
	// less was granted than asked.
	GrantedScope string
	// FellBack is the POST answer that sent the client to GET (containerd's fallback for
	// endpoints without the OAuth2 form); nil when there was none.
	FellBack *StatusError
}

// StatusError is an HTTP answer other than the one awaited, with the server's own message.
type StatusError struct {
	// Request names what was asked: "GET http://auth.example.com/token as alice".
	Request    string
	StatusCode int
	Status     string // "401 Unauthorized"
	// Code and Message come from the answer's body (OAuth2 error and error_description, a
	// registry's errors[0].code and message, or a line of text), cleaned for a terminal.
	Code    string
	Message string
}

func (e *StatusError) Error() string {
	s := e.Request + ": " + e.Status
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Code != "" && !strings.EqualFold(e.Code, e.Message) {
		s += " (" + e.Code + ")"
	}
	return s
}

// Client follows registry challenges. The zero value is not usable: HTTP is required.
type Client struct {
	HTTP *http.Client
	// ClientID is sent as client_id; default "portcullis-token".
	ClientID string
	// UserAgent is sent as User-Agent; default "portcullis-regclient".
	UserAgent string
	// InsecureRealm lets FetchToken follow a plain-http realm named by an https registry
	// (ErrInsecureRealm otherwise). For a lab; never for credentials that matter.
	InsecureRealm bool
}

func (c *Client) clientID() string {
	if c.ClientID != "" {
		return c.ClientID
	}
	return "portcullis-token"
}

// Ping asks registry/v2/ without credentials and returns the challenges it answers with;
// none (nil) when the registry answers 200: it needs no authentication.
func (c *Client) Ping(ctx context.Context, registry string) ([]Challenge, error) {
	target := v2URL(registry)
	resp, err := c.send(ctx, http.MethodGet, target, nil, nil, false)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil, nil
	case http.StatusUnauthorized:
	default:
		se := statusError("GET "+target, resp)
		if resp.StatusCode == http.StatusNotFound {
			se.Message = "no registry API here (want 200 or 401 from /v2/)"
		}
		return nil, se
	}
	values := resp.Header.Values("WWW-Authenticate")
	if len(values) == 0 {
		return nil, fmt.Errorf("GET %s: 401 without a WWW-Authenticate challenge", target)
	}
	var chs []Challenge
	for _, v := range values { // several header lines are one list (RFC 7230 §3.2.2)
		cs, err := ParseChallenges(v)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", target, err)
		}
		chs = append(chs, cs...)
	}
	for i := range chs {
		chs[i].Registry = registry
	}
	return chs, nil
}

// FetchToken follows a Bearer challenge to its realm:
//   - with req.SubjectToken: the token exchange grant (RFC 8693) by POST, never retried by GET;
//   - with an identity token: the OAuth2 refresh grant by POST;
//   - with a user and password: GET with Basic credentials (offline_token=true when
//     req.Offline), or with req.OAuth the OAuth2 password grant by POST;
//   - with nothing: GET anonymously.
//
// A POST answered 404, 405, or 400 with an error other than invalid_grant (an endpoint that
// does not speak the OAuth2 form or this grant) is retried by GET with Basic credentials, as
// containerd does: the user (or none) and the password or the refresh token. invalid_grant
// is a refusal of the credentials themselves and is not retried. A refused request is a
// *StatusError.
func (c *Client) FetchToken(ctx context.Context, ch Challenge, req Request) (*Result, error) {
	if ch.Scheme != "bearer" {
		return nil, fmt.Errorf("a %q challenge has no token endpoint", ch.Scheme)
	}
	realm := ch.Realm()
	if realm == "" {
		return nil, errors.New("the Bearer challenge names no realm")
	}
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the Bearer challenge's realm %q is not an http(s) URL", printable(realm))
	}
	if err := CheckRealm(ch); err != nil && !c.InsecureRealm {
		return nil, err
	}
	res := &Result{Realm: realm, Service: ch.Service(), Scopes: req.Scopes}
	if len(res.Scopes) == 0 {
		res.Scopes = strings.Fields(ch.Scope())
	}
	cr := req.Credentials
	var tr tokenAnswer
	switch {
	case req.SubjectToken != "":
		tr, err = c.exchange(ctx, res, req)
	case cr.IdentityToken != "":
		res.Grant = "refresh_token"
		tr, err = c.postThenGet(ctx, res, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cr.IdentityToken}},
			cr.Username, cr.IdentityToken)
	case cr.Username != "" || cr.Password != "":
		res.Grant = "password"
		if req.OAuth {
			form := url.Values{"grant_type": {"password"}, "username": {cr.Username}, "password": {cr.Password}}
			if req.Offline {
				form.Set("access_type", "offline")
			}
			tr, err = c.postThenGet(ctx, res, form, cr.Username, cr.Password)
		} else {
			tr, err = c.get(ctx, res, cr.Username, cr.Password, req.Offline)
		}
	default:
		res.Grant = "anonymous"
		tr, err = c.get(ctx, res, "", "", false)
	}
	if err != nil {
		return nil, err
	}
	res.Token = tr.AccessToken
	if res.Token == "" {
		res.Token = tr.Token
	}
	if res.Token == "" {
		return nil, fmt.Errorf("%s %s answered 200 without a token", res.Method, realm)
	}
	res.RefreshToken, res.ExpiresIn, res.IssuedAt = tr.RefreshToken, tr.ExpiresIn, tr.IssuedAt
	res.IssuedTokenType, res.GrantedScope = tr.IssuedTokenType, tr.Scope
	return res, nil
}

// CheckBasic tries credentials on registry/v2/ with Basic: a registry that answers a Basic
// challenge takes them on every request, so there is no token, only a yes or a no.
func (c *Client) CheckBasic(ctx context.Context, registry string, cr Credentials) error {
	if cr.IdentityToken != "" && cr.Password == "" {
		return errors.New("the registry takes Basic credentials: a user name and password, not an identity token")
	}
	if cr.Username == "" && cr.Password == "" {
		return ErrNoCredentials
	}
	target := v2URL(registry)
	resp, err := c.send(ctx, http.MethodGet, target, func(r *http.Request) { r.SetBasicAuth(cr.Username, cr.Password) }, nil, true)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return statusError("GET "+target+" with Basic credentials as "+printable(cr.Username), resp)
	}
	return nil
}

type tokenAnswer struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	// RFC 8693 §2.2.1 (token exchange), and RFC 6749's scope.
	IssuedTokenType string `json:"issued_token_type"`
	Scope           string `json:"scope"`
}

// postThenGet posts the OAuth2 form and falls back to GET with Basic user:secret when the
// endpoint does not take it.
func (c *Client) postThenGet(ctx context.Context, res *Result, form url.Values, user, secret string) (tokenAnswer, error) {
	tr, err := c.post(ctx, res, form)
	var se *StatusError
	if err == nil || !errors.As(err, &se) || !postUnsupported(se) {
		return tr, err
	}
	res.FellBack = se
	return c.get(ctx, res, user, secret, false)
}

// postUnsupported says whether a POST answer means "not this way" rather than "not you".
func postUnsupported(e *StatusError) bool {
	switch e.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	case http.StatusBadRequest:
		return e.Code != "invalid_grant"
	}
	return false
}

func (c *Client) get(ctx context.Context, res *Result, user, secret string, offline bool) (tokenAnswer, error) {
	res.Method = http.MethodGet
	u, _ := url.Parse(res.Realm) // checked by FetchToken
	q := u.Query()
	if res.Service != "" {
		q.Set("service", res.Service)
	}
	for _, s := range res.Scopes {
		q.Add("scope", s)
	}
	q.Set("client_id", c.clientID())
	if offline {
		q.Set("offline_token", "true")
	}
	if user != "" && res.Grant == "password" {
		q.Set("account", user) // docker sends it; a refresh token speaks for its own user
	}
	u.RawQuery = q.Encode()
	var auth func(*http.Request)
	if user != "" || secret != "" {
		auth = func(r *http.Request) { r.SetBasicAuth(user, secret) }
	}
	return c.tokenRequest(ctx, http.MethodGet, u.String(), describe("GET", res.Realm, user, res.Grant), auth, nil, auth != nil)
}

func (c *Client) post(ctx context.Context, res *Result, form url.Values) (tokenAnswer, error) {
	res.Method = http.MethodPost
	form.Set("client_id", c.clientID())
	if res.Service != "" {
		form.Set("service", res.Service)
	}
	if len(res.Scopes) > 0 {
		form.Set("scope", strings.Join(res.Scopes, " ")) // RFC 6749 §3.3: one space-separated list
	}
	body := form.Encode()
	setForm := func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }
	return c.tokenRequest(ctx, http.MethodPost, res.Realm, describe("POST", res.Realm, form.Get("username"), res.Grant), setForm, strings.NewReader(body), true)
}

func describe(method, realm, user, grant string) string {
	s := method + " " + realm
	switch {
	case grant == "refresh_token":
		s += " with the refresh token"
	case grant == "token_exchange":
		s += " with the subject token (token exchange)"
	case user != "":
		s += " as " + printable(user)
	case grant == "anonymous":
		s += " anonymously"
	}
	return s
}

// tokenRequest asks the token endpoint; secret says whether the request carries credentials
// (Basic, or a form with a password or refresh token), which keeps it from being redirected
// off https or to another host.
func (c *Client) tokenRequest(ctx context.Context, method, target, what string, prepare func(*http.Request), body io.Reader, secret bool) (tokenAnswer, error) {
	resp, err := c.send(ctx, method, target, prepare, body, secret)
	if err != nil {
		return tokenAnswer{}, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return tokenAnswer{}, statusError(what, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return tokenAnswer{}, fmt.Errorf("%s: reading the answer: %w", what, err)
	}
	var tr tokenAnswer
	if err := json.Unmarshal(data, &tr); err != nil {
		return tokenAnswer{}, fmt.Errorf("%s: the answer is not a token answer (JSON): %v", what, err)
	}
	return tr, nil
}

// send makes one request; with secret, redirects off https or to another host are refused
// (ErrUnsafeRedirect).
func (c *Client) send(ctx context.Context, method, target string, prepare func(*http.Request), body io.Reader, secret bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "portcullis-regclient"
	}
	req.Header.Set("User-Agent", ua)
	if prepare != nil {
		prepare(req)
	}
	hc := c.HTTP
	if secret {
		hc = KeepCredentials(hc)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrUnsafeRedirect) {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the redirect's own message names both places
			}
			return nil, fmt.Errorf("%s %s: %w", method, target, err)
		}
		if IsPlainHTTP(err) {
			return nil, fmt.Errorf("%s %s: %w", method, target, ErrPlainHTTP)
		}
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	return resp, nil
}

// CheckRealm refuses (ErrInsecureRealm) a Bearer challenge from an https registry whose
// realm is plain http. The registry is the challenge's Registry (set by Ping); a challenge
// that does not say where it came from is held to https. Crane and oras refuse such realms
// too; docker and skopeo follow them.
func CheckRealm(ch Challenge) error {
	realm, err := url.Parse(ch.Realm())
	if err != nil || !strings.EqualFold(realm.Scheme, "http") {
		return nil
	}
	if reg, err := url.Parse(ch.Registry); err == nil && ch.Registry != "" && strings.EqualFold(reg.Scheme, "http") {
		return nil // a plain-http registry: its realm gets what the registry would
	}
	from := "an https registry"
	if ch.Registry != "" {
		from = printable(ch.Registry)
	}
	return fmt.Errorf("%w: %s names the token endpoint %s; the credentials, and the token that comes back, would cross the network in clear, so nothing was sent",
		ErrInsecureRealm, from, printable(ch.Realm()))
}

// KeepCredentials returns a copy of hc that refuses (ErrUnsafeRedirect) a redirect leaving
// https or going to another host or port: for requests that carry credentials. The copy
// keeps hc's transport, timeout and any redirect policy of its own, which runs after this
// one.
func KeepCredentials(hc *http.Client) *http.Client {
	cp := *hc
	prev := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := SameOrigin(via[0].URL, req.URL); err != nil {
			return err
		}
		if prev != nil {
			return prev(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

// SameOrigin returns ErrUnsafeRedirect, saying why, when a redirect from from to to leaves
// https or changes the host or port.
func SameOrigin(from, to *url.URL) error {
	switch {
	case strings.EqualFold(from.Scheme, "https") && !strings.EqualFold(to.Scheme, "https"):
		return fmt.Errorf("%w: %s redirects to %s, off https", ErrUnsafeRedirect, printable(from.Redacted()), printable(to.Redacted()))
	case !strings.EqualFold(from.Hostname(), to.Hostname()) || effectivePort(from) != effectivePort(to):
		return fmt.Errorf("%w: %s redirects to %s, another host", ErrUnsafeRedirect, printable(from.Redacted()), printable(to.Redacted()))
	}
	return nil
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

func v2URL(registry string) string { return strings.TrimSuffix(registry, "/") + "/v2/" }

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	_ = resp.Body.Close()
}

// statusError reads the server's reason from the body: an OAuth2 error (error,
// error_description), a registry error list (errors[].code, message), docker's details, or
// the first line of a text answer.
func statusError(what string, resp *http.Response) *StatusError {
	e := &StatusError{Request: what, StatusCode: resp.StatusCode, Status: resp.Status}
	if e.Status == "" {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	e.Code, e.Message = reasonFromBody(data)
	return e
}

func reasonFromBody(data []byte) (code, message string) {
	var b struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
		Details     string          `json:"details"`
		Message     string          `json:"message"`
		Errors      []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &b) == nil {
		var errStr string
		_ = json.Unmarshal(b.Error, &errStr) // some servers put an object here: ignore it
		switch {
		case errStr != "" || b.Description != "":
			return printable(errStr), printable(firstNonEmpty(b.Description, b.Details, b.Message))
		case len(b.Errors) > 0:
			msgs := make([]string, 0, len(b.Errors))
			for _, x := range b.Errors {
				msgs = append(msgs, x.Message)
			}
			return printable(b.Errors[0].Code), printable(strings.Join(msgs, "; "))
		case b.Details != "" || b.Message != "":
			return "", printable(firstNonEmpty(b.Details, b.Message))
		}
		return "", ""
	}
	text := strings.TrimSpace(string(data))
	if text == "" || strings.HasPrefix(text, "<") { // an HTML error page says nothing useful on one line
		return "", ""
	}
	line, _, _ := strings.Cut(text, "\n")
	return "", printable(strings.TrimSpace(line))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// printable makes server-chosen text safe for a terminal and one line: control characters
// become "?" and anything past 300 bytes is cut.
func printable(s string) string {
	const limit = 300
	cut := len(s) > limit
	if cut {
		s = s[:limit]
	}
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}
