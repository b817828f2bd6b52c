package pages

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pageNames are the templates; each is parsed with the base layout into a set of its own, so
// every page can define the same "title" and "content" blocks.
var pageNames = []string{"account", "signin", "device", "device_confirm", "device_done", "pat_created", "error"}

func parseTemplates() map[string]*template.Template {
	funcs := template.FuncMap{"when": when}
	m := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		m[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(assets, "templates/base.html", "templates/"+name+".html"))
	}
	return m
}

// view is what the base layout reads; Page is the page's own data.
type view struct {
	Title string
	// Subject is the signed-in person ("" on the sign-in and error pages): the header then
	// shows who is signed in and a sign-out button.
	Subject string
	// CSRF is the token every form of the page carries.
	CSRF string
	Page any
}

// stamp is a time as the pages show it, with a machine-readable form for <time>.
type stamp struct {
	Text, ISO string
}

// when formats a timestamp; an unset one is "never".
func when(t *timestamppb.Timestamp) stamp {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return stamp{}
	}
	u := t.AsTime().UTC()
	return stamp{Text: u.Format("2 Jan 2006, 15:04 UTC"), ISO: u.Format(time.RFC3339)}
}

// render writes a whole page or, when the template fails, a plain 500: the page is built in a
// buffer first so a failure never leaves half a page behind a 200.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, code int, name string, v view) {
	var b bytes.Buffer
	if err := p.tmpl[name].ExecuteTemplate(&b, "base", v); err != nil {
		p.log.ErrorContext(r.Context(), "page template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// problem is the error page's content.
type problem struct {
	Heading, Message string
	// Link and LinkText lead on; the account page when empty.
	Link, LinkText string
}

func (p *Pages) fail(w http.ResponseWriter, r *http.Request, code int, pr problem) {
	if pr.Link == "" {
		pr.Link, pr.LinkText = "/", "Go to your account"
	}
	p.render(w, r, code, "error", view{Title: pr.Heading, Page: pr})
}

func (p *Pages) forbiddenCSRF(w http.ResponseWriter, r *http.Request) {
	p.log.InfoContext(r.Context(), "form refused: CSRF token or origin", "path", r.URL.Path)
	p.fail(w, r, http.StatusForbidden, problem{
		Heading: "This form could not be accepted",
		Message: "It has expired or did not come from this site. Go back, reload the page and try again.",
	})
}

func (p *Pages) formError(w http.ResponseWriter, r *http.Request, err error) {
	if err == errTooLarge {
		p.fail(w, r, http.StatusRequestEntityTooLarge, problem{Heading: "Too much data", Message: "The form sent more than this page accepts."})
		return
	}
	p.fail(w, r, http.StatusBadRequest, problem{Heading: "Bad request", Message: "The form could not be read."})
}

func (p *Pages) tooLong(w http.ResponseWriter, r *http.Request, what string) {
	p.fail(w, r, http.StatusBadRequest, problem{Heading: "Bad request", Message: "The " + what + " is too long."})
}

// maxStatusMessage bounds the InvalidArgument text shown on a page.
const maxStatusMessage = 300

// grpcError turns an AccountService error into a page. returnTo is where sign-in comes back
// to when the session turned out to be over. Only InvalidArgument's message, which authn
// writes for the caller, reaches the page; everything else stays in the log.
func (p *Pages) grpcError(w http.ResponseWriter, r *http.Request, op string, err error, returnTo string) {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated:
		p.clearSession(w)
		redirect(w, signinURL(returnTo))
	case codes.ResourceExhausted:
		p.fail(w, r, http.StatusTooManyRequests, problem{Heading: "Too many attempts", Message: "There have been too many attempts. Please wait a while and try again later."})
	case codes.InvalidArgument:
		p.fail(w, r, http.StatusBadRequest, problem{Heading: "That did not work", Message: clip(st.Message(), maxStatusMessage)})
	case codes.PermissionDenied:
		p.fail(w, r, http.StatusForbidden, problem{Heading: "Not allowed", Message: "Your account may not do this here."})
	case codes.NotFound:
		p.fail(w, r, http.StatusNotFound, problem{Heading: "Not found", Message: "It does not exist, or it is no longer there."})
	case codes.FailedPrecondition:
		p.fail(w, r, http.StatusNotFound, problem{Heading: "Not available", Message: "This is not enabled on this server."})
	default:
		p.log.ErrorContext(r.Context(), "account service call failed", "op", op, "code", st.Code().String(), "err", st.Message())
		p.fail(w, r, http.StatusServiceUnavailable, problem{Heading: "Something went wrong", Message: "The service is not available right now. Please try again in a moment."})
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) { // do not cut a character in two
		i--
	}
	return strings.TrimSpace(s[:i]) + "…"
}
