package pages

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// csrfLabel is the message the signed-in forms' token is the HMAC of: keyed by the session
// token, it is different for every session and needs no state of its own.
const csrfLabel = "portcullis csrf v1"

// maxReturnTo bounds return_to; a longer one is not a path of ours.
const maxReturnTo = 2048

// maxSessionToken bounds the session cookie before it goes to authn.
const maxSessionToken = 512

// csrfFor is the CSRF token of the forms of a signed-in page.
func csrfFor(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte(csrfLabel))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF compares the form's token to the session's in constant time.
func validCSRF(sessionToken, got string) bool {
	if sessionToken == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(csrfFor(sessionToken)), []byte(got))
}

// randomToken is 32 random bytes, base64url: the pre-sign-in double-submit value.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// localPath returns s when it is a path on this host, "/" otherwise: never an open redirect.
// Browsers read "//host", "/\host" and paths with tabs or newlines stripped as another host,
// so a backslash or a control character anywhere refuses the whole value.
func localPath(s string) string {
	if s == "" || len(s) > maxReturnTo || s[0] != '/' {
		return "/"
	}
	if strings.HasPrefix(s, "//") {
		return "/"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return s
}

// signinURL is the sign-in page that comes back to returnTo.
func signinURL(returnTo string) string {
	returnTo = localPath(returnTo)
	if returnTo == "/" {
		return "/signin?return_to=%2F"
	}
	return "/signin?return_to=" + url.QueryEscape(returnTo)
}

// sameOrigin refuses a POST that names another origin, or that the browser says comes from
// another site. Browsers send Origin on every POST; its absence means an old client or a
// non-browser, which the CSRF token still stops.
func (p *Pages) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		if p.origin == "" || !strings.EqualFold(o, p.origin) {
			return false
		}
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	default: // same-site (a sibling subdomain) or cross-site
		return false
	}
}

// errTooLarge and errBadForm tell readForm's failures apart.
var (
	errTooLarge = errors.New("form too large")
	errBadForm  = errors.New("malformed form")
)

// readForm parses a bounded urlencoded body. Only the body counts (r.PostForm): a CSRF token
// in the query string, which ends up in logs and history, is not accepted.
func (p *Pages) readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return errBadForm
	}
	return nil
}

// field is a form value of at most max bytes; ok is false when it is longer.
func field(r *http.Request, name string, max int) (string, bool) {
	v := r.PostForm.Get(name)
	if len(v) > max {
		return "", false
	}
	return v, true
}

// sessionToken is the browser's web session token, "" when none (or not one of ours).
func (p *Pages) sessionToken(r *http.Request) string {
	c, err := r.Cookie(p.sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > maxSessionToken {
		return ""
	}
	return c.Value
}

func (p *Pages) setSession(w http.ResponseWriter, token string, expires *timestamppb.Timestamp) {
	c := &http.Cookie{
		Name: p.sessionCookie, Value: token, Path: "/",
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	if expires != nil {
		if d := expires.AsTime().Sub(p.opt.Now()); d > 0 {
			c.MaxAge = int((d + time.Second - 1) / time.Second)
		} else {
			c.MaxAge = -1 // already over: do not keep it
		}
	}
	http.SetCookie(w, c)
}

func (p *Pages) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: p.sessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// preSigninCSRF returns the double-submit value of the sign-in form, setting its cookie when
// the browser did not send a usable one. SameSite=Strict: no other site's request carries it.
func (p *Pages) preSigninCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := randomToken()
	http.SetCookie(w, &http.Cookie{
		Name: p.csrfCookie, Value: v, Path: "/",
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	return v
}

// validPreSigninCSRF compares the sign-in form's field to its cookie in constant time.
func (p *Pages) validPreSigninCSRF(r *http.Request) bool {
	c, err := r.Cookie(p.csrfCookie)
	got := r.PostForm.Get("csrf")
	if err != nil || c.Value == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(c.Value), []byte(got))
}

func (p *Pages) setFlow(w http.ResponseWriter, flow string) {
	http.SetCookie(w, &http.Cookie{
		Name: flowCookie, Value: flow, Path: "/signin", MaxAge: int(flowTTL / time.Second),
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (p *Pages) clearFlow(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: flowCookie, Value: "", Path: "/signin", MaxAge: -1,
		Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// redirect answers 303 See Other: after a POST the browser follows with a GET.
func redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}
