package pages

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// Bounds of the account forms.
const (
	maxID        = 128
	maxPATName   = 64
	maxScopes    = 50
	maxScope     = 256
	maxScopeText = maxScopes * (maxScope + 2)
	maxExpiry    = 16
	day          = 24 * time.Hour
	// defaultPATCap is the longest expiry offered when authn names no maximum; authn still
	// decides.
	defaultPATCap = 365 * day
)

// notices are the messages a redirect back to the account page may ask for (?done=): a fixed
// set, so the query cannot put words on the page.
var notices = map[string]string{
	"session-revoked": "The session was revoked.",
	"pat-revoked":     "The token was revoked.",
}

type accountPage struct {
	Account  *authnv1.GetAccountResponse
	Sessions []*authnv1.Session
	PATs     bool
	Tokens   []*authnv1.PersonalAccessToken
	Expiry   []expiryOption
	Form     patForm
	Notice   string
}

// patForm is the create-token form as sent, to show again beside its error.
type patForm struct {
	Name, Scopes, Expiry, Error string
}

type expiryOption struct {
	Value, Label string
	Selected     bool
}

// signedIn answers who the session's person is, or writes the sign-in redirect (or the
// error page) and answers nil.
func (p *Pages) signedIn(ctx context.Context, w http.ResponseWriter, r *http.Request, token, returnTo string) *authnv1.GetAccountResponse {
	if token == "" {
		redirect(w, signinURL(returnTo))
		return nil
	}
	acct, err := p.acct.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: token})
	if err != nil {
		p.grpcError(w, r, "GetAccount", err, returnTo)
		return nil
	}
	return acct
}

func (p *Pages) handleAccount(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := p.ctx(r)
	defer cancel()
	token := p.sessionToken(r)
	acct := p.signedIn(ctx, w, r, token, "/")
	if acct == nil {
		return
	}
	p.renderAccount(ctx, w, r, http.StatusOK, token, acct, patForm{}, notices[r.URL.Query().Get("done")])
}

func (p *Pages) renderAccount(ctx context.Context, w http.ResponseWriter, r *http.Request, code int, token string, acct *authnv1.GetAccountResponse, form patForm, notice string) {
	sessions, err := p.acct.ListMySessions(ctx, &authnv1.ListMySessionsRequest{WebSessionToken: token})
	if err != nil {
		p.grpcError(w, r, "ListMySessions", err, "/")
		return
	}
	page := accountPage{Account: acct, Sessions: sessions.GetSessions(), PATs: acct.GetPersonalAccessTokens(), Form: form, Notice: notice}
	if page.PATs {
		pats, err := p.acct.ListMyPersonalAccessTokens(ctx, &authnv1.ListMyPersonalAccessTokensRequest{WebSessionToken: token})
		switch status.Code(err) {
		case codes.OK:
			page.Tokens = pats.GetPersonalAccessTokens()
		case codes.FailedPrecondition: // turned off since GetAccount: show no token section
			page.PATs = false
		default:
			p.grpcError(w, r, "ListMyPersonalAccessTokens", err, "/")
			return
		}
		page.Expiry = expiryOptions(patCap(acct), form.Expiry)
	}
	p.render(w, r, code, "account", view{Title: "Your account", Subject: acct.GetIdentity().GetSubject(), CSRF: csrfFor(token), Page: page})
}

func patCap(acct *authnv1.GetAccountResponse) time.Duration {
	if d := acct.GetPatMaxTtl().AsDuration(); d > 0 {
		return d
	}
	return defaultPATCap
}

// expiryOptions are the choices of the expiry select: the usual spans up to maxTTL, and
// maxTTL itself ("max") when it is not one of them.
func expiryOptions(maxTTL time.Duration, selected string) []expiryOption {
	var opts []expiryOption
	exact := false
	for _, d := range []int{1, 7, 30, 90, 180, 365} {
		if time.Duration(d)*day > maxTTL {
			break
		}
		label := fmt.Sprintf("%d days", d)
		if d == 1 {
			label = "1 day"
		}
		opts = append(opts, expiryOption{Value: strconv.Itoa(d), Label: label})
		exact = exact || time.Duration(d)*day == maxTTL
	}
	if !exact {
		opts = append(opts, expiryOption{Value: "max", Label: "The maximum allowed (" + span(maxTTL) + ")"})
	}
	if selected == "" {
		selected = "30"
	}
	found := false
	for i := range opts {
		if opts[i].Value == selected {
			opts[i].Selected, found = true, true
		}
	}
	if !found {
		opts[len(opts)-1].Selected = true
	}
	return opts
}

// span says a duration in days, or hours when less than two days.
func span(d time.Duration) string {
	if d >= 2*day {
		return fmt.Sprintf("%d days", d/day)
	}
	h := max(int(d/time.Hour), 1)
	if h == 1 {
		return "1 hour"
	}
	return fmt.Sprintf("%d hours", h)
}

// parseExpiry reads the expiry select: a whole number of days, or "max".
func parseExpiry(v string, maxTTL time.Duration) (time.Duration, string) {
	if v == "max" {
		return maxTTL, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, "Choose when the token expires."
	}
	if time.Duration(n)*day > maxTTL {
		return 0, "A token may last at most " + span(maxTTL) + "."
	}
	return time.Duration(n) * day, ""
}

// parseScopes reads the scopes textarea, one per line.
func parseScopes(text string) ([]string, string) {
	var scopes []string
	for line := range strings.Lines(text) {
		s := strings.TrimSpace(line)
		if s == "" {
			continue
		}
		if len(s) > maxScope {
			return nil, fmt.Sprintf("A scope may be at most %d characters long.", maxScope)
		}
		if len(scopes) == maxScopes {
			return nil, fmt.Sprintf("A token may have at most %d scopes.", maxScopes)
		}
		scopes = append(scopes, s)
	}
	return scopes, ""
}

type patCreatedPage struct {
	Token    *authnv1.PersonalAccessToken
	Secret   string
	Username string
	Registry string
}

func (p *Pages) handleCreatePAT(w http.ResponseWriter, r *http.Request) {
	token, ok := p.postAuth(w, r)
	if !ok {
		return
	}
	name, ok1 := field(r, "name", maxPATName)
	scopeText, ok2 := field(r, "scopes", maxScopeText)
	expiry, ok3 := field(r, "expires", maxExpiry)
	if !ok1 || !ok2 || !ok3 {
		p.tooLong(w, r, "name, scope list or expiry")
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	acct := p.signedIn(ctx, w, r, token, "/")
	if acct == nil {
		return
	}
	if !acct.GetPersonalAccessTokens() {
		p.fail(w, r, http.StatusNotFound, problem{Heading: "Not available", Message: "Personal access tokens are not enabled on this server."})
		return
	}
	form := patForm{Name: name, Scopes: scopeText, Expiry: expiry}
	name = strings.TrimSpace(name)
	maxTTL := patCap(acct)
	ttl, msg := parseExpiry(expiry, maxTTL)
	scopes, smsg := parseScopes(scopeText)
	switch {
	case name == "":
		msg = "Give the token a name."
	case msg == "":
		msg = smsg
	}
	if msg != "" {
		form.Error = msg
		p.renderAccount(ctx, w, r, http.StatusBadRequest, token, acct, form, "")
		return
	}
	resp, err := p.acct.CreateMyPersonalAccessToken(ctx, &authnv1.CreateMyPersonalAccessTokenRequest{
		WebSessionToken: token, Name: name, ExpiresIn: durationpb.New(ttl), Scopes: scopes,
	})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.InvalidArgument:
			form.Error = clip(st.Message(), maxStatusMessage)
			p.renderAccount(ctx, w, r, http.StatusBadRequest, token, acct, form, "")
		case codes.AlreadyExists:
			form.Error = "You already have a token with that name."
			p.renderAccount(ctx, w, r, http.StatusConflict, token, acct, form, "")
		default:
			p.grpcError(w, r, "CreateMyPersonalAccessToken", err, "/")
		}
		return
	}
	username := resp.GetPersonalAccessToken().GetOwner()
	if username == "" {
		username = acct.GetIdentity().GetSubject()
	}
	registry := p.opt.Registry
	if registry == "" {
		registry = "<registry>"
	}
	// The only page that ever shows a secret; no-store keeps it out of the browser's cache.
	p.render(w, r, http.StatusOK, "pat_created", view{
		Title: "Your new token", Subject: acct.GetIdentity().GetSubject(), CSRF: csrfFor(token),
		Page: patCreatedPage{Token: resp.GetPersonalAccessToken(), Secret: resp.GetSecret(), Username: username, Registry: registry},
	})
}

func (p *Pages) handleRevokeSession(w http.ResponseWriter, r *http.Request) {
	p.revoke(w, r, "RevokeMySession", "session-revoked", func(ctx context.Context, token, id string) error {
		_, err := p.acct.RevokeMySession(ctx, &authnv1.RevokeMySessionRequest{WebSessionToken: token, Id: id})
		return err
	})
}

func (p *Pages) handleRevokePAT(w http.ResponseWriter, r *http.Request) {
	p.revoke(w, r, "RevokeMyPersonalAccessToken", "pat-revoked", func(ctx context.Context, token, id string) error {
		_, err := p.acct.RevokeMyPersonalAccessToken(ctx, &authnv1.RevokeMyPersonalAccessTokenRequest{WebSessionToken: token, Id: id})
		return err
	})
}

// revoke runs one of the revoke forms and goes back to the account page (POST, redirect, GET:
// reloading does not send the form again).
func (p *Pages) revoke(w http.ResponseWriter, r *http.Request, op, done string, call func(ctx context.Context, token, id string) error) {
	token, ok := p.postAuth(w, r)
	if !ok {
		return
	}
	id, ok := field(r, "id", maxID)
	if !ok {
		p.tooLong(w, r, "id")
		return
	}
	if id == "" {
		p.fail(w, r, http.StatusBadRequest, problem{Heading: "Bad request", Message: "The form did not say what to revoke."})
		return
	}
	ctx, cancel := p.ctx(r)
	defer cancel()
	if err := call(ctx, token, id); err != nil {
		p.grpcError(w, r, op, err, "/")
		return
	}
	redirect(w, "/?done="+done)
}
