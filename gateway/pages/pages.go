// Package pages is the gateway's web face for people: signing in (the company IdP or a
// password), approving a `portcullis login` device flow (RFC 8628), and seeing and revoking
// their registry sessions and personal access tokens. The pages are server-rendered with
// html/template, use one embedded stylesheet and no JavaScript. Like the rest of the gateway
// they only translate: every decision is a call to authn's AccountService.
package pages

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

//go:embed templates/*.html static/style.css
var assets embed.FS

// Options are the pages' runtime settings.
type Options struct {
	// PublicURL is the gateway's external base URL (https://auth.example.com); the IdP
	// callback is PublicURL+"/signin/callback". Its scheme decides the cookies: https gives
	// Secure, __Host- prefixed ones. Its origin is the only one a POST may come from; when it
	// is empty or unparsable, every POST that names an Origin is refused.
	PublicURL string
	// SSO says an IdP is configured (show "Sign in with <IdPName>"); IdPName defaults to
	// "your identity provider".
	SSO     bool
	IdPName string
	// Password says password sign-in is offered.
	Password bool
	// ClientAddr returns the client's address for a request (the gateway's trusted-proxy
	// logic); nil takes the host of r.RemoteAddr.
	ClientAddr func(*http.Request) string
	// Timeout bounds the gRPC calls of one request (default 10s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Registry is the registry host shown in the `docker login` line of a new personal access
	// token; empty shows the placeholder "<registry>".
	Registry string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Pages serves the HTML pages.
type Pages struct {
	opt    Options
	acct   authnv1.AccountServiceClient
	log    *slog.Logger
	tmpl   map[string]*template.Template
	css    []byte
	origin string // scheme://host of PublicURL; "" refuses every POST with an Origin
	secure bool   // PublicURL is https
	// Cookie names; the __Host- prefix (https only) keeps a sibling subdomain from planting one.
	sessionCookie string
	csrfCookie    string
}

const (
	defaultTimeout = 10 * time.Second
	defaultIdPName = "your identity provider"
	flowCookie     = "pc_flow"
	flowTTL        = 10 * time.Minute
	maxBody        = 64 << 10
)

// New builds the pages. It panics only when the embedded templates do not parse, which the
// tests catch.
func New(o Options, acct authnv1.AccountServiceClient) *Pages {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if strings.TrimSpace(o.IdPName) == "" {
		o.IdPName = defaultIdPName
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClientAddr == nil {
		o.ClientAddr = remoteHost
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	p := &Pages{opt: o, acct: acct, log: o.Logger, sessionCookie: "portcullis_session", csrfCookie: "pc_csrf"}
	if u, err := url.Parse(o.PublicURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		// Browsers leave the default port out of Origin.
		host := strings.ToLower(u.Hostname())
		if port := u.Port(); port != "" && !(u.Scheme == "https" && port == "443") && !(u.Scheme == "http" && port == "80") {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		p.origin = u.Scheme + "://" + host
		if u.Scheme == "https" {
			p.secure = true
			p.sessionCookie = "__Host-portcullis"
			p.csrfCookie = "__Host-pc_csrf"
		}
	}
	p.tmpl = parseTemplates()
	css, err := assets.ReadFile("static/style.css")
	if err != nil {
		panic(err)
	}
	p.css = css
	return p
}

// Register adds the routes to mux. "GET /{$}" is the root alone, so the host's catch-all
// "/" still answers every other path.
func (p *Pages) Register(mux *http.ServeMux) {
	routes := map[string]http.HandlerFunc{
		"GET /{$}":              p.handleAccount,
		"GET /signin":           p.handleSignIn,
		"POST /signin/password": p.handlePasswordSignIn,
		"GET /signin/sso":       p.handleSSO,
		"GET /signin/callback":  p.handleCallback,
		"POST /signout":         p.handleSignOut,
		"GET /device":           p.handleDeviceForm,
		"POST /device":          p.handleDeviceLookup,
		"POST /device/decide":   p.handleDeviceDecide,
		"POST /sessions/revoke": p.handleRevokeSession,
		"POST /pats":            p.handleCreatePAT,
		"POST /pats/revoke":     p.handleRevokePAT,
		"GET /static/style.css": p.handleCSS,
	}
	allow := map[string][]string{}
	for pattern, h := range routes {
		mux.Handle(pattern, p.secureHeaders(h))
		method, path, _ := strings.Cut(pattern, " ")
		if method == http.MethodGet {
			allow[path] = append(allow[path], method, http.MethodHead)
		} else {
			allow[path] = append(allow[path], method)
		}
	}
	// Without these the host's catch-all would answer another method on our paths 404.
	for path, methods := range allow {
		slices.Sort(methods)
		mux.Handle(path, p.secureHeaders(p.methodNotAllowed(strings.Join(methods, ", "))))
	}
}

func (p *Pages) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		p.fail(w, r, http.StatusMethodNotAllowed, problem{Heading: "Not allowed", Message: "This page does not answer that kind of request."})
	}
}

// secureHeaders sets the headers every answer carries, redirects and errors included.
func (p *Pages) secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with
		// every form POST (Fetch, "serializing a request origin"), which sameOrigin refuses.
		// Other sites (the IdP) still get no Referer: no user code leaves in one.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (p *Pages) handleCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	// The stylesheet holds nothing private; an hour of caching spares a request per page.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(p.css)
}

// ctx bounds the gRPC calls of one request.
func (p *Pages) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), p.opt.Timeout)
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
