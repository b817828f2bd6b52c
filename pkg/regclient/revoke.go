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

// ErrNoRevocation: the token server publishes metadata (RFC 8414) without a
// revocation_endpoint — it does not revoke tokens.
var ErrNoRevocation = errors.New("the token server's metadata lists no revocation_endpoint: it does not revoke tokens")

// metadataPath is where RFC 8414 §3 puts the authorization server's metadata.
const metadataPath = "/.well-known/oauth-authorization-server"

// Revocation is where a realm's token server revokes tokens.
type Revocation struct {
	Endpoint string
	// Guessed is why Endpoint is not from the server's metadata; "" when it is.
	Guessed string
}

// RevocationEndpoint finds the RFC 7009 endpoint of the token server at realm (a Bearer
// challenge's realm): the revocation_endpoint of the RFC 8414 metadata at the realm's origin.
// Only when there is no metadata at all (404) is the realm's origin + /revoke assumed — where
// Portcullis serves it, for a proxy that routes only the token paths; metadata that exists but
// lists no endpoint is ErrNoRevocation, and is believed. An https realm's endpoint must be
// https too: the refresh token goes there.
func (c *Client) RevocationEndpoint(ctx context.Context, realm string) (Revocation, error) {
	ru, err := url.Parse(realm)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" {
		return Revocation{}, fmt.Errorf("realm %s is not an http(s) URL", printable(realm))
	}
	origin := &url.URL{Scheme: ru.Scheme, Host: ru.Host}
	meta := origin.JoinPath(metadataPath).String()
	resp, err := c.send(ctx, http.MethodGet, meta, func(r *http.Request) { r.Header.Set("Accept", "application/json") }, nil, false)
	if err != nil {
		return Revocation{}, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return Revocation{Endpoint: origin.JoinPath("/revoke").String(),
			Guessed: "the token server has no metadata (" + metadataPath + " answered 404): assuming " + origin.String() + "/revoke, where Portcullis serves it"}, nil
	default:
		return Revocation{}, statusError("GET "+meta, resp)
	}
	var m struct {
		RevocationEndpoint string `json:"revocation_endpoint"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Revocation{}, fmt.Errorf("GET %s: %w", meta, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Revocation{}, fmt.Errorf("GET %s: the metadata is not JSON: %v", meta, err)
	}
	if m.RevocationEndpoint == "" {
		return Revocation{}, fmt.Errorf("GET %s: %w", meta, ErrNoRevocation)
	}
	// RFC 8414 wants an absolute URL; a relative one (a server without its public URL) is
	// read as a browser would.
	eu, err := url.Parse(m.RevocationEndpoint)
	if err == nil {
		eu = origin.ResolveReference(eu)
	}
	switch {
	case err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" || eu.User != nil || eu.Fragment != "":
		return Revocation{}, fmt.Errorf("GET %s: revocation_endpoint %s is not an http(s) URL", meta, printable(m.RevocationEndpoint))
	case ru.Scheme == "https" && eu.Scheme != "https":
		return Revocation{}, fmt.Errorf("%w: the https realm %s names the revocation endpoint %s; the refresh token would cross the network in clear, so nothing was sent",
			ErrInsecureRealm, printable(realm), printable(eu.String()))
	}
	return Revocation{Endpoint: eu.String()}, nil
}

// Revoke asks endpoint to revoke token (RFC 7009 §2.1) with the hint (e.g. "refresh_token";
// "" for none) and the Client's client_id. A 200 is success, whether or not the server knew
// the token (§2.2); anything else is an error (a *StatusError for an answer), after which the
// token may still be live. The token goes in the form body, never the URL, and the request
// is not redirected off https or to another host.
func (c *Client) Revoke(ctx context.Context, endpoint, token, hint string) error {
	form := url.Values{"token": {token}, "client_id": {c.clientID()}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	setForm := func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }
	resp, err := c.send(ctx, http.MethodPost, endpoint, setForm, strings.NewReader(form.Encode()), true)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return statusError("POST "+endpoint, resp)
	}
	return nil
}
