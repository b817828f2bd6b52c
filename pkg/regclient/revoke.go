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
	md, err := c.AuthServerMetadata(ctx, realm)
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
		origin := md.Origin
		return Revocation{Endpoint: origin + "/revoke",
			Guessed: "the token server has no metadata (" + metadataPath + " answered 404): assuming " + origin + "/revoke, where Portcullis serves it"}, nil
	}
	if err != nil {
		return Revocation{}, err
	}
	if md.RevocationEndpoint == "" {
		return Revocation{}, fmt.Errorf("GET %s: %w", md.URL, ErrNoRevocation)
	}
	if err := md.checkScheme(realm, md.RevocationEndpoint, "revocation endpoint"); err != nil {
		return Revocation{}, err
	}
	return Revocation{Endpoint: md.RevocationEndpoint}, nil
}

// AuthServerMetadata is what a token server publishes at RFC 8414's metadata path, the
// endpoints clients here use. Each is an absolute http(s) URL, or "" when not published.
type AuthServerMetadata struct {
	// Origin is the realm's origin ("https://auth.example.com"), URL the metadata's.
	Origin, URL                 string
	TokenEndpoint               string
	RevocationEndpoint          string
	DeviceAuthorizationEndpoint string
	GrantTypesSupported         []string
}

// AuthServerMetadata reads the RFC 8414 metadata at the origin of realm (a Bearer challenge's
// realm). An answer other than 200 is a *StatusError (404: the server publishes none), with
// Origin and URL set. Relative endpoints (a server without its public URL) are read as a
// browser would; one that is not an http(s) URL is an error. Whether a plain-http endpoint
// may be used is the caller's decision (see CheckEndpointScheme).
func (c *Client) AuthServerMetadata(ctx context.Context, realm string) (AuthServerMetadata, error) {
	ru, err := url.Parse(realm)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" {
		return AuthServerMetadata{}, fmt.Errorf("realm %s is not an http(s) URL", printable(realm))
	}
	origin := &url.URL{Scheme: ru.Scheme, Host: ru.Host}
	md := AuthServerMetadata{Origin: origin.String(), URL: origin.JoinPath(metadataPath).String()}
	resp, err := c.send(ctx, http.MethodGet, md.URL, func(r *http.Request) { r.Header.Set("Accept", "application/json") }, nil, false)
	if err != nil {
		return md, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return md, statusError("GET "+md.URL, resp)
	}
	var m struct {
		TokenEndpoint               string   `json:"token_endpoint"`
		RevocationEndpoint          string   `json:"revocation_endpoint"`
		DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint"`
		GrantTypesSupported         []string `json:"grant_types_supported"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return md, fmt.Errorf("GET %s: %w", md.URL, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return md, fmt.Errorf("GET %s: the metadata is not JSON: %v", md.URL, err)
	}
	md.GrantTypesSupported = m.GrantTypesSupported
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{
		{"token_endpoint", m.TokenEndpoint, &md.TokenEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint, &md.RevocationEndpoint},
		{"device_authorization_endpoint", m.DeviceAuthorizationEndpoint, &md.DeviceAuthorizationEndpoint},
	} {
		if f.in == "" {
			continue
		}
		eu, err := url.Parse(f.in)
		if err == nil {
			eu = origin.ResolveReference(eu)
		}
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" || eu.User != nil || eu.Fragment != "" {
			return md, fmt.Errorf("GET %s: %s %s is not an http(s) URL", md.URL, f.name, printable(f.in))
		}
		*f.out = eu.String()
	}
	return md, nil
}

// checkScheme refuses (ErrInsecureRealm) a plain-http endpoint named by an https realm: the
// refresh token would cross the network in clear.
func (md AuthServerMetadata) checkScheme(realm, endpoint, what string) error {
	if strings.HasPrefix(strings.ToLower(realm), "https:") && !strings.HasPrefix(strings.ToLower(endpoint), "https:") {
		return fmt.Errorf("%w: the https realm %s names the %s %s; the refresh token would cross the network in clear, so nothing was sent",
			ErrInsecureRealm, printable(realm), what, printable(endpoint))
	}
	return nil
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
