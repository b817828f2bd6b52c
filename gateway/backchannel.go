package gateway

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// handleBackChannelLogout is the OpenID Connect Back-Channel Logout 1.0 endpoint (§2.5): the
// company IdP posts a logout token when a person signs out there, and authn ends the person's
// SSO sessions, registry and web. authn verifies the token; the gateway only translates.
// Success is an empty 200 with no-store (§2.8); a token that does not verify is 400
// invalid_request; a backend that cannot be reached 503, so the IdP retries.
func (g *Gateway) handleBackChannelLogout(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ended, e := g.backChannelLogout(w, r)
	outcome := "logged_out"
	if e != nil {
		outcome = outcomeOf(e)
	}
	attrs := g.auditHead(r, start, outcome)
	if e != nil {
		attrs = append(attrs, "status", e.status, "error", e.code)
	} else {
		attrs = append(attrs, "sessions_ended", ended)
	}
	// Never the logout token. Whom it named is authn's audit event, joined by the request id.
	g.audit.InfoContext(r.Context(), "back-channel logout", attrs...)
	if e != nil {
		g.writeError(w, e)
		return
	}
	writeEmpty(w)
}

func (g *Gateway) backChannelLogout(w http.ResponseWriter, r *http.Request) (int32, *apiError) {
	if r.URL.RawQuery != "" {
		// A token in the URL ends up in access logs.
		return 0, badRequest("invalid_request", "logout_token goes in the form body, not the URL")
	}
	if e := g.readForm(w, r); e != nil {
		return 0, e
	}
	f := r.PostForm
	if e := onceEach(f, []string{"logout_token"}); e != nil {
		return 0, e
	}
	if f.Get("logout_token") == "" {
		return 0, badRequest("invalid_request", "logout_token is required")
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.BackendTimeout)
	defer cancel()
	resp, err := g.c.Account.BackChannelLogout(ctx, &authnv1.BackChannelLogoutRequest{LogoutToken: f.Get("logout_token")})
	if err != nil {
		if status.Code(err) == codes.InvalidArgument {
			// §2.8: the token did not verify (signature, issuer, audience, events, age).
			return 0, badRequest("invalid_request", "the logout token does not verify")
		}
		if e := featureOff(err); e != nil {
			return 0, e
		}
		return 0, g.fromGRPC(ctx, "authn", err)
	}
	return resp.GetEnded(), nil
}
