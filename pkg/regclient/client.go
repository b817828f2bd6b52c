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

// Credentials are what the caller logs in with; all empty means anonymous.
type Credentials struct {
	Username, Password string
	// IdentityToken is a refresh token (docker's identitytoken): the OAuth2 refresh grant.
	IdentityToken string
}

// Result is what following the challenge gave.
type Result struct {
	// Scheme is the registry's challenge: "bearer", "basic" or "" (no authentication).
	Scheme  string
	Realm   string
	Service string
	// Token is the access token (Bearer only); RefreshToken when one was asked for and given.
	Token, RefreshToken string
	ExpiresIn           int
	// Method is how the token was fetched: "GET" or "POST".
	Method string
}

// Client follows registry challenges.
type Client struct {
	HTTP     *http.Client
	ClientID string // sent as client_id (default "portcullis-token")
}

// Ping asks registry/v2/ and returns the challenge it answers with; nil when no
// authentication is needed.
func (c *Client) Ping(ctx context.Context, registry string) (*Challenge, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(registry, "/")+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ping %s: %w", registry, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusOK {
		return nil, nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return nil, fmt.Errorf("ping %s: %s (want 200 or 401)", registry, resp.Status)
	}
	chs, err := ParseChallenges(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		return nil, fmt.Errorf("ping %s: WWW-Authenticate: %w", registry, err)
	}
	for _, ch := range chs { // Bearer when offered, else the first
		if ch.Scheme == "bearer" {
			return &ch, nil
		}
	}
	return &chs[0], nil
}

// Token follows the registry's challenge for scopes. offline asks for a refresh token.
func (c *Client) Token(ctx context.Context, registry string, scopes []string, cr Credentials, offline bool) (*Result, error) {
	ch, err := c.Ping(ctx, registry)
	if err != nil {
		return nil, err
	}
	if ch == nil {
		return &Result{}, nil
	}
	r := &Result{Scheme: ch.Scheme, Realm: ch.Params["realm"], Service: ch.Params["service"]}
	switch ch.Scheme {
	case "basic":
		return r, c.checkBasic(ctx, registry, cr)
	case "bearer":
	default:
		return nil, fmt.Errorf("registry asks for %q authentication, which this client does not speak", ch.Scheme)
	}
	if r.Realm == "" {
		return nil, errors.New("Bearer challenge without a realm")
	}
	if len(scopes) == 0 && ch.Params["scope"] != "" {
		scopes = strings.Fields(ch.Params["scope"])
	}
	var tr tokenResponse
	if cr.IdentityToken != "" {
		r.Method = "POST"
		tr, err = c.post(ctx, r, scopes, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cr.IdentityToken}})
		var se *statusError
		if errors.As(err, &se) && (se.code == 400 || se.code == 404 || se.code == 405) {
			// containerd's fallback: GET with Basic, no user, the refresh token as password.
			r.Method = "GET"
			tr, err = c.get(ctx, r, scopes, "", cr.IdentityToken, false)
		}
	} else {
		r.Method = "GET"
		tr, err = c.get(ctx, r, scopes, cr.Username, cr.Password, offline)
	}
	if err != nil {
		return nil, err
	}
	r.Token, r.RefreshToken, r.ExpiresIn = tr.token(), tr.RefreshToken, tr.ExpiresIn
	if r.Token == "" {
		return nil, errors.New("the token endpoint answered without a token")
	}
	return r, nil
}

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

func (t tokenResponse) token() string {
	if t.AccessToken != "" {
		return t.AccessToken
	}
	return t.Token
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("token endpoint: %d %s", e.code, e.msg) }

func (c *Client) clientID() string {
	if c.ClientID != "" {
		return c.ClientID
	}
	return "portcullis-token"
}

func (c *Client) get(ctx context.Context, r *Result, scopes []string, user, pass string, offline bool) (tokenResponse, error) {
	u, err := url.Parse(r.Realm)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("realm %q: %w", r.Realm, err)
	}
	q := u.Query()
	if r.Service != "" {
		q.Set("service", r.Service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	q.Set("client_id", c.clientID())
	if offline {
		q.Set("offline_token", "true")
	}
	if user != "" {
		q.Set("account", user)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return tokenResponse{}, err
	}
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return c.do(req)
}

func (c *Client) post(ctx context.Context, r *Result, scopes []string, form url.Values) (tokenResponse, error) {
	form.Set("client_id", c.clientID())
	if r.Service != "" {
		form.Set("service", r.Service)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Realm, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *Client) do(req *http.Request) (tokenResponse, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Details     string `json:"details"`
		}
		_ = json.Unmarshal(body, &e)
		msg := strings.TrimSpace(strings.Join([]string{e.Error, e.Description}, ": "))
		if msg == ":" || msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return tokenResponse{}, &statusError{code: resp.StatusCode, msg: msg}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: answer is not JSON: %w", err)
	}
	return tr, nil
}

// checkBasic tries the credentials on /v2/ with Basic: the registry takes them directly.
func (c *Client) checkBasic(ctx context.Context, registry string, cr Credentials) error {
	if cr.Username == "" && cr.Password == "" {
		return errors.New("the registry asks for Basic credentials: give -u and -p")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(registry, "/")+"/v2/", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(cr.Username, cr.Password)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the registry refused the Basic credentials: %s", resp.Status)
	}
	return nil
}
