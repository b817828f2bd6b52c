package gateway

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/jwsshape"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// revokeParams may each appear once in a revocation request (RFC 7009 §2.1, RFC 6749 §3.1).
var revokeParams = []string{"token", "token_type_hint", "client_id"}

// handleRevoke is the OAuth 2.0 token revocation endpoint (RFC 7009): `portcullis logout` and
// any OAuth client end the session behind a refresh token here. The gateway only translates:
// authn's EndSession ends the session, and holding the token is the authority to end it — that
// is RFC 7009's model (a public client authenticates with nothing else), so someone who holds
// another user's token can end that session, as they could have used it.
//
// Every refresh-shaped token answers the same 200 with an empty body whether it named a live,
// expired, revoked or no session (§2.2): the endpoint tells nobody whether a token existed.
// Only a backend that cannot be reached answers otherwise (503): the session may still be live
// and the client must know it.
func (g *Gateway) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind, e := g.revoke(w, r)
	outcome := "revoked"
	switch {
	case e != nil && (e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests):
		outcome = "unavailable"
	case e != nil && e.status >= 500:
		outcome = "error"
	case e != nil:
		outcome = "bad_request"
	case kind != "refresh_token":
		outcome = "ignored" // not a token this server issues: nothing to end
	}
	client, peer := g.remoteAddr(r)
	attrs := []any{"outcome", outcome, "method", r.Method, "remote_addr", client, "token_kind", kind,
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if peer != client {
		attrs = append(attrs, "proxy_addr", peer)
	}
	if r.PostForm != nil {
		attrs = append(attrs, "client_id", r.PostForm.Get("client_id"), "token_type_hint", r.PostForm.Get("token_type_hint"))
	}
	// Never the token. Whether a session ended is authn's audit event ("session revoked"),
	// joined to this one by the request id; this one cannot say without becoming an oracle.
	g.audit.InfoContext(r.Context(), "token revocation", attrs...)
	if e != nil {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
		}
		g.writeError(w, e)
		return
	}
	writeEmpty(w)
}

// revoke checks the request and ends the session of a refresh token. kind says what the token
// looked like ("refresh_token", "access_token", "other"; "" before there was one), for the
// audit event.
func (g *Gateway) revoke(w http.ResponseWriter, r *http.Request) (kind string, _ *apiError) {
	switch {
	case r.Method != http.MethodPost:
		return "", badRequest("invalid_request", "method "+quoteShort(r.Method)+" is not allowed; revoke with POST and a form body (RFC 7009)")
	case r.URL.RawQuery != "":
		// Parameters in the URL end up in access logs, proxies and browser history: a token
		// there would leak as it is revoked. Refused even beside a good body.
		return "", badRequest("invalid_request", "parameters go in the form body, not the URL: a token in a URL ends up in logs")
	}
	if e := g.readForm(w, r); e != nil {
		return "", e
	}
	f := r.PostForm
	if e := onceEach(f, revokeParams); e != nil {
		return "", e
	}
	tok := f.Get("token")
	if tok == "" {
		return "", badRequest("invalid_request", "token is required")
	}
	switch {
	case strings.HasPrefix(tok, refreshTokenPrefix):
		// Whatever the hint says: §2.1 has the server look beyond a wrong hint.
		kind = "refresh_token"
	case f.Get("token_type_hint") == "access_token" || jwsshape.Compact(tok):
		return "access_token", &apiError{status: http.StatusBadRequest, code: "unsupported_token_type",
			description: "registry access tokens are short-lived, stateless JWTs and cannot be revoked; they expire on their own. Revoke the refresh token"}
	default:
		// A robot key, a personal access token or anything else: not revocable here (they have
		// their own admin revocation), and §2.2 answers 200 for a token the server does not
		// know. authn is not asked, so nothing happens.
		return "other", nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.BackendTimeout)
	defer cancel()
	remote, _ := g.remoteAddr(r)
	if _, err := g.c.Authn.EndSession(ctx, &authnv1.EndSessionRequest{RefreshToken: tok, RemoteAddr: remote}); err != nil {
		return kind, g.fromGRPC(ctx, "authn", err)
	}
	return kind, nil
}
