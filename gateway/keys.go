package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

func (g *Gateway) publicKeys(r *http.Request) (*signerv1.ListPublicKeysResponse, *apiError) {
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.BackendTimeout)
	defer cancel()
	resp, err := g.c.Signer.ListPublicKeys(ctx, &signerv1.ListPublicKeysRequest{})
	if err != nil {
		return nil, g.fromGRPC(ctx, "signer", err)
	}
	return resp, nil
}

func (g *Gateway) handleJWKS(w http.ResponseWriter, r *http.Request) {
	resp, e := g.publicKeys(r)
	if e != nil {
		g.writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// The signer derives max-age from its propagation delay: verifiers must see a newly
	// published key before it signs.
	maxAge := 60 // a signer that does not rotate says nothing
	if d := resp.GetMaxAge(); d != nil {
		maxAge = max(0, int(d.AsDuration().Seconds()))
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	_, _ = w.Write(resp.GetJwks())
}

func (g *Gateway) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	resp, e := g.publicKeys(r)
	if e != nil {
		g.writeError(w, e)
		return
	}
	// The same document answers OpenID Connect discovery and RFC 8414's authorization
	// server metadata: the token endpoint and the grants are the same.
	// Never the Host header: a client could make the answer point at a JWKS of its choosing
	// (and any cache in front of us keep it for others).
	base := strings.TrimSuffix(g.opt.PublicURL, "/")
	doc := map[string]any{
		"issuer":                resp.GetIssuer(),
		"jwks_uri":              base + "/.well-known/jwks.json",
		"token_endpoint":        base + "/token",
		"grant_types_supported": []string{"password", "refresh_token", GrantTypeTokenExchange},
		// RFC 8414 §2 / RFC 7009: where a client (portcullis logout) ends its session. Public
		// clients: the token is the only authority, so no client authentication is asked.
		"revocation_endpoint":                        base + "/revoke",
		"revocation_endpoint_auth_methods_supported": []string{"none"},
	}
	if g.deviceOn() {
		// RFC 8628 §4: where `portcullis login` starts. Back-channel logout is not named here:
		// the IdP is told its URL when the client is registered there.
		doc["device_authorization_endpoint"] = base + "/device_authorization"
		doc["grant_types_supported"] = []string{"password", "refresh_token", GrantTypeTokenExchange, GrantTypeDeviceCode}
	}
	writeJSON(w, http.StatusOK, doc)
}
