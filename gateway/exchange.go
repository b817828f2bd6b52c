package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/jwsshape"
)

// The names RFC 8693 gives the token exchange grant and the token types Portcullis speaks.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// handleTokenExchange serves the token exchange grant (RFC 8693) of POST /token: a workload
// presents the JWT its platform gave it as subject_token and gets a registry token, with no
// docker login. authn checks the JWT with the oidc backends' rules, exactly as when it comes
// as a Basic password; the gateway checks only the request's form.
//
// The registry is named by service (the Docker parameter) or by audience (RFC 8693 §2.1, the
// logical name of the target service): either may be absent, every value given must name the
// same known service, and anything else is invalid_target. resource (an absolute URI) is
// refused with invalid_target: Portcullis knows registries by service name, not by URL.
func (g *Gateway) handleTokenExchange(w http.ResponseWriter, r *http.Request, start time.Time, req *tokenRequest, f url.Values) {
	req.grantType, req.hasCreds = grantExchange, true
	if e := g.parseExchange(r, req, f); e != nil {
		g.finish(w, r, start, req, e, nil)
		return
	}
	out, e := g.issue(r.Context(), req)
	if e != nil {
		g.finish(w, r, start, req, e.oauth(req), nil)
		return
	}
	g.finish(w, r, start, req, nil, out)
	// RFC 8693 §2.2.1; token as well, for Docker clients that read only that. No refresh
	// token: the workload exchanges a fresh JWT when it needs another token.
	answer := map[string]any{
		"access_token": out.token, "token": out.token, "issued_token_type": TokenTypeAccessToken,
		"token_type": "Bearer", "expires_in": out.expiresIn, "issued_at": out.issuedAt.UTC().Format(time.RFC3339),
	}
	// §2.2.1: scope is required when it differs from what was asked, and only then.
	if granted := scopeStrings(out.granted); !sameScopes(scopeStrings(req.scopes), granted) {
		answer["scope"] = strings.Join(granted, " ")
	}
	writeJSON(w, http.StatusOK, answer)
}

// parseExchange checks a token exchange request and fills req from it.
func (g *Gateway) parseExchange(r *http.Request, req *tokenRequest, f url.Values) *apiError {
	// One identity per request: Basic credentials (or a password or refresh token in the
	// form) beside the subject token would leave it open whom the token is for. There are no
	// OAuth clients to authenticate, so Basic can only be a user's login here.
	if r.Header.Get("Authorization") != "" {
		return badRequest("invalid_request", "token exchange takes the subject_token alone: send no Authorization header")
	}
	for _, p := range []string{"username", "password", "refresh_token"} {
		if f.Has(p) {
			return badRequest("invalid_request", "token exchange takes the subject_token alone: "+p+" is not allowed")
		}
	}
	if f.Has("actor_token") || f.Has("actor_token_type") {
		return badRequest("invalid_request", "actor_token is not supported: a workload exchanges its own token, nobody acts for it")
	}
	req.subjectToken = f.Get("subject_token")
	switch tt := f.Get("subject_token_type"); {
	case req.subjectToken == "":
		return badRequest("invalid_request", "subject_token is required for the token exchange grant")
	case tt == "":
		return badRequest("invalid_request", "subject_token_type is required for the token exchange grant")
	case tt != TokenTypeJWT && tt != TokenTypeIDToken:
		return badRequest("invalid_request", "unsupported subject_token_type "+quoteShort(tt)+"; use "+TokenTypeJWT+" or "+TokenTypeIDToken)
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken {
		return badRequest("invalid_request", "unsupported requested_token_type "+quoteShort(rt)+"; Portcullis issues "+TokenTypeAccessToken)
	}
	if !jwsshape.Compact(req.subjectToken) {
		// Not worth a backend call: authn would refuse it for its shape too.
		return badRequest("invalid_request", "subject_token is not a JWT (compact JWS)")
	}
	target, e := g.exchangeTarget(f)
	if e != nil {
		return e
	}
	return g.parseCommon(req, []string{target}, f["scope"])
}

// exchangeTarget is the service a token exchange asks for, from service and audience.
func (g *Gateway) exchangeTarget(f url.Values) (string, *apiError) {
	if f.Has("resource") {
		return "", badRequest("invalid_target", "resource is not supported: name the registry's service with service or audience")
	}
	var auds []string
	for _, a := range f["audience"] {
		if a != "" && !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	svc := f.Get("service")
	switch {
	case len(auds) > 1:
		return "", badRequest("invalid_target", "audience names more than one service; a token is for one")
	case len(auds) == 1 && svc != "" && auds[0] != svc:
		return "", badRequest("invalid_target", "audience and service name different services")
	case len(auds) == 1:
		svc = auds[0]
	case svc == "":
		return "", badRequest("invalid_request", "service (or audience) is required")
	}
	if !slices.Contains(g.opt.Services, svc) {
		return "", badRequest("invalid_target", "unknown service "+quoteShort(svc))
	}
	return svc, nil
}

// sameScopes compares two scope lists as sets.
func sameScopes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
