package regclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// GrantTypeDeviceCode is RFC 8628's grant type: a device polls the token endpoint with it.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// DeviceAuthorization is a device authorization endpoint's answer (RFC 8628 §3.2).
type DeviceAuthorization struct {
	// DeviceCode is a secret: it polls for a session.
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	// ExpiresIn and Interval are seconds; Interval is 0 when the server named none (RFC
	// 8628 §3.2 then says 5).
	ExpiresIn int64 `json:"expires_in"`
	Interval  int64 `json:"interval"`
}

// StartDevice asks endpoint (a device_authorization_endpoint) to start a device flow for
// service and scopes (none: only a session) with the Client's client_id (RFC 8628 §3.1). A
// refusal is a *StatusError.
func (c *Client) StartDevice(ctx context.Context, endpoint, service string, scopes []string) (*DeviceAuthorization, error) {
	form := url.Values{"client_id": {c.clientID()}}
	if service != "" {
		form.Set("service", service)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	what := "POST " + endpoint
	data, err := c.postForm(ctx, endpoint, what, form, false)
	if err != nil {
		return nil, err
	}
	var da DeviceAuthorization
	if err := json.Unmarshal(data, &da); err != nil {
		return nil, fmt.Errorf("%s: the answer is not a device authorization (JSON): %v", what, err)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, fmt.Errorf("%s: the answer lacks device_code, user_code or verification_uri", what)
	}
	return &da, nil
}

// PollDevice asks the token endpoint once whether the flow of deviceCode is approved (RFC
// 8628 §3.4). Until it is, the answer is a *StatusError whose Code is the RFC 8628 §3.5
// error: authorization_pending, slow_down, access_denied, expired_token. Approved, the
// Result carries the access token and the session's refresh token.
func (c *Client) PollDevice(ctx context.Context, tokenEndpoint, deviceCode string) (*Result, error) {
	form := url.Values{"grant_type": {GrantTypeDeviceCode}, "device_code": {deviceCode}, "client_id": {c.clientID()}}
	what := "POST " + tokenEndpoint + " (device code ***)"
	data, err := c.postForm(ctx, tokenEndpoint, what, form, true)
	if err != nil {
		return nil, err
	}
	var tr tokenAnswer
	if err := json.Unmarshal(data, &tr); err != nil {
		return nil, fmt.Errorf("%s: the answer is not a token answer (JSON): %v", what, err)
	}
	res := &Result{Realm: tokenEndpoint, Method: http.MethodPost, Grant: "device_code", Token: tr.AccessToken,
		RefreshToken: tr.RefreshToken, ExpiresIn: tr.ExpiresIn, IssuedAt: tr.IssuedAt, GrantedScope: tr.Scope}
	if res.Token == "" {
		res.Token = tr.Token
	}
	if res.Token == "" {
		return nil, fmt.Errorf("%s answered 200 without a token", what)
	}
	return res, nil
}

// postForm posts form to endpoint and returns the 200 answer's body; secret keeps a request
// that carries one from being redirected off https or to another host.
func (c *Client) postForm(ctx context.Context, endpoint, what string, form url.Values, secret bool) ([]byte, error) {
	setForm := func(r *http.Request) {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "application/json")
	}
	resp, err := c.send(ctx, http.MethodPost, endpoint, setForm, strings.NewReader(form.Encode()), secret)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(what, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", what, err)
	}
	return data, nil
}
