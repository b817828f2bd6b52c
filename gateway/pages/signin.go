package pages

import (
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// Field bounds of the sign-in forms; longer is not a mistake anyone makes typing.
const (
	maxUsername = 256
	maxPassword = 1024
	maxCode     = 4096 // the IdP's authorization code
	maxState    = 1024
)

type signinPage struct {
	SSO      bool
	SSOHref  string
	IdPName  string
	Password bool
	ReturnTo string
	Username string
	Error    string
}

func (p *Pages) renderSignIn(w http.ResponseWriter, r *http.Request, code int, returnTo, username, msg string) {
	returnTo = localPath(returnTo)
	p.render(w, r, code, "signin", view{
		Title: "Sign in",
		CSRF:  p.preSigninCSRF(w, r),
		Page: signinPage{
			SSO: p.opt.SSO, SSOHref: "/signin/sso?return_to=" + url.QueryEscape(returnTo), IdPName: p.opt.IdPName,
			Password: p.opt.Password, ReturnTo: returnTo, Username: username, Error: msg,
		},
	})
}

func (p *Pages) handleSignIn(w http.ResponseWriter, r *http.Request) {
	p.renderSignIn(w, r, http.StatusOK, r.URL.Query().Get("return_to"), "", "")
}

func (p *Pages) notEnabled(w http.ResponseWriter, r *http.Request) {
	p.fail(w, r, http.StatusNotFound, problem{Heading: "Not available", Message: "This way of signing in is not enabled here.", Link: "/signin", LinkText: "Sign in"})
}

func (p *Pages) handlePasswordSignIn(w http.ResponseWriter, r *http.Request) {
	if !p.opt.Password {
		p.notEnabled(w, r)
		return
	}
	if !p.sameOrigin(r) {
		p.forbiddenCSRF(w, r)
		return
	}
	if err := p.readForm(w, r); err != nil {
		p.formError(w, r, err)
		return
	}
	if !p.validPreSigninCSRF(r) {
		p.forbiddenCSRF(w, r)
		return
	}
	username, ok1 := field(r, "username", maxUsername)
	password, ok2 := field(r, "password", maxPassword)
	returnTo, ok3 := field(r, "return_to", maxReturnTo)
	if !ok1 || !ok2 || !ok3 {
		p.tooLong(w, r, "username, password or return address")
		return
	}
	returnTo = localPath(returnTo)
	if username == "" || password == "" {
		p.renderSignIn(w, r, http.StatusBadRequest, returnTo, username, "Enter your username and your password.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	resp, err := p.acct.PasswordSignIn(ctx, &authnv1.PasswordSignInRequest{
		Username: username, Password: password, RemoteAddr: p.opt.ClientAddr(r), UserAgent: r.UserAgent(),
	})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.Unauthenticated:
			// 400, not 401: a 401 promises an HTTP authentication challenge, which a form is not.
			p.renderSignIn(w, r, http.StatusBadRequest, returnTo, username, "Wrong username or password.")
		case codes.PermissionDenied:
			p.renderSignIn(w, r, http.StatusForbidden, returnTo, username, "Your account may not sign in here.")
		case codes.ResourceExhausted:
			p.renderSignIn(w, r, http.StatusTooManyRequests, returnTo, username, "Too many attempts. Please try again later.")
		case codes.InvalidArgument:
			p.renderSignIn(w, r, http.StatusBadRequest, returnTo, username, clip(st.Message(), maxStatusMessage))
		default:
			p.grpcError(w, r, "PasswordSignIn", err, returnTo)
		}
		return
	}
	p.setSession(w, resp.GetWebSessionToken(), resp.GetExpiresAt())
	redirect(w, returnTo)
}

// handleSSO starts the authorization code flow. It is a GET (a plain link): the redirect to
// the IdP is then a navigation, which CSP's form-action does not govern.
func (p *Pages) handleSSO(w http.ResponseWriter, r *http.Request) {
	if !p.opt.SSO {
		p.notEnabled(w, r)
		return
	}
	returnTo := localPath(r.URL.Query().Get("return_to"))
	ctx, cancel := p.ctx(r)
	defer cancel()
	resp, err := p.acct.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: p.callbackURL(), ReturnTo: returnTo})
	if err != nil {
		p.grpcError(w, r, "BeginSignIn", err, returnTo)
		return
	}
	u, err := url.Parse(resp.GetAuthorizationUrl())
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || resp.GetFlow() == "" {
		p.log.ErrorContext(r.Context(), "BeginSignIn answered an unusable authorization URL or no flow")
		p.fail(w, r, http.StatusServiceUnavailable, problem{Heading: "Something went wrong", Message: "Signing in with " + p.opt.IdPName + " is not possible right now. Please try again in a moment.", Link: "/signin", LinkText: "Sign in"})
		return
	}
	p.setFlow(w, resp.GetFlow())
	redirect(w, u.String())
}

func (p *Pages) callbackURL() string { return p.opt.PublicURL + "/signin/callback" }

// handleCallback is where the IdP sends the browser back. The flow cookie, set by handleSSO
// in this browser, is what ties the answer to this sign-in: authn checks state against it,
// so an attacker's code, sent to someone else's browser, does not sign them in.
func (p *Pages) handleCallback(w http.ResponseWriter, r *http.Request) {
	if !p.opt.SSO {
		p.notEnabled(w, r)
		return
	}
	q := r.URL.Query()
	var flow string
	if c, err := r.Cookie(flowCookie); err == nil {
		flow = c.Value
	}
	p.clearFlow(w) // one use, whatever happens
	if e := q.Get("error"); e != "" {
		// The IdP's error and its description are the URL's, which anyone can write: logged
		// (bounded), never shown.
		p.log.InfoContext(r.Context(), "identity provider refused the sign-in", "error", clip(e, 64))
		if e == "access_denied" {
			p.renderSignIn(w, r, http.StatusForbidden, "/", "", "Signing in was cancelled or refused at "+p.opt.IdPName+".")
		} else {
			p.renderSignIn(w, r, http.StatusBadRequest, "/", "", p.opt.IdPName+" could not sign you in. Please try again.")
		}
		return
	}
	code, state := q.Get("code"), q.Get("state")
	if code == "" || state == "" || len(code) > maxCode || len(state) > maxState {
		p.renderSignIn(w, r, http.StatusBadRequest, "/", "", "The sign-in could not be completed. Please try again.")
		return
	}
	if flow == "" {
		p.renderSignIn(w, r, http.StatusBadRequest, "/", "", "The sign-in took too long, or was started in another browser. Please try again.")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	resp, err := p.acct.CompleteSignIn(ctx, &authnv1.CompleteSignInRequest{
		Code: code, State: state, Flow: flow, RedirectUri: p.callbackURL(),
		RemoteAddr: p.opt.ClientAddr(r), UserAgent: r.UserAgent(),
	})
	if err != nil {
		switch status.Code(err) {
		case codes.Unauthenticated:
			p.renderSignIn(w, r, http.StatusBadRequest, "/", "", "The sign-in could not be completed. Please try again.")
		case codes.PermissionDenied:
			p.renderSignIn(w, r, http.StatusForbidden, "/", "", "Your account may not sign in here.")
		default:
			p.grpcError(w, r, "CompleteSignIn", err, "/")
		}
		return
	}
	p.setSession(w, resp.GetWebSessionToken(), resp.GetExpiresAt())
	redirect(w, localPath(resp.GetReturnTo()))
}

func (p *Pages) handleSignOut(w http.ResponseWriter, r *http.Request) {
	token, ok := p.postAuth(w, r)
	if !ok {
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	if _, err := p.acct.SignOut(ctx, &authnv1.SignOutRequest{WebSessionToken: token}); err != nil {
		// Dropping the cookie alone would leave the session alive on the server while telling
		// the person they are out: say it failed, and keep the cookie so they can try again.
		p.grpcError(w, r, "SignOut", err, "/")
		return
	}
	p.clearSession(w)
	redirect(w, "/signin")
}

// postAuth checks what every signed-in form needs: the origin, a bounded body, a session
// cookie and the session's CSRF token. When it answers false the response is written.
func (p *Pages) postAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !p.sameOrigin(r) {
		p.forbiddenCSRF(w, r)
		return "", false
	}
	if err := p.readForm(w, r); err != nil {
		p.formError(w, r, err)
		return "", false
	}
	token := p.sessionToken(r)
	if token == "" {
		redirect(w, signinURL("/"))
		return "", false
	}
	if !validCSRF(token, r.PostForm.Get("csrf")) {
		p.forbiddenCSRF(w, r)
		return "", false
	}
	return token, true
}
