package pages_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/gateway/pages"
)

const publicURL = "https://auth.example.com"

var testNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type harness struct {
	t    *testing.T
	fake *fakeAccount
	mux  *http.ServeMux
	logs *bytes.Buffer
}

func newHarness(t *testing.T, edit ...func(*pages.Options)) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFake(testNow), mux: http.NewServeMux(), logs: &bytes.Buffer{}}
	o := pages.Options{
		PublicURL: publicURL, SSO: true, IdPName: "Example SSO", Password: true,
		ClientAddr: func(*http.Request) string { return "192.0.2.10" },
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:   "registry.example.com",
		Now:        func() time.Time { return testNow },
	}
	for _, e := range edit {
		e(&o)
	}
	// The gateway's own catch-all is on the same mux: Register must not conflict with it.
	h.mux.HandleFunc("/", http.NotFound)
	pages.New(o, h.fake).Register(h.mux)
	return h
}

func (h *harness) do(r *http.Request) *httptest.ResponseRecorder {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, r)
	return rec
}

func (h *harness) get(target, token string) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(http.MethodGet, publicURL+target, nil)
	if token != "" {
		r.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: token})
	}
	return h.do(r)
}

// postReq is a same-origin form POST as a browser sends it.
func postReq(target string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, publicURL+target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", publicURL)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

// post sends form as token's session, with token's CSRF value unless form has one.
func (h *harness) post(target, token string, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	form = cloneForm(form) // tables share their forms between parallel subtests
	if _, ok := form["csrf"]; !ok && token != "" {
		form.Set("csrf", csrf(token))
	}
	r := postReq(target, form)
	if token != "" {
		r.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: token})
	}
	return h.do(r)
}

func cloneForm(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = vs
	}
	return c
}

// csrf is the spec's token, computed independently of the package.
func csrf(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("portcullis csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func cookie(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, target, token string
		form                        url.Values
		status                      int
		location                    string
		contains                    []string
	}{
		{name: "account signed in", method: "GET", target: "/", token: aliceToken, status: 200,
			contains: []string{"Signed in as <strong>alice</strong>", "portcullis-cli", "198.51.100.4", "ci-builds", "repository:team/*:pull", "Create a token", `action="/signout"`,
				`old-laptop`, `<span class="tag">expired</span>`, `<time datetime="2026-10-28T12:00:00Z">28 Oct 2026, 12:00 UTC</time>`, "never"}},
		{name: "account signed out", method: "GET", target: "/", status: 303, location: "/signin?return_to=%2F"},
		{name: "account unknown session", method: "GET", target: "/", token: "pcw_nobody", status: 303, location: "/signin?return_to=%2F"},
		{name: "account notice", method: "GET", target: "/?done=pat-revoked", token: aliceToken, status: 200, contains: []string{"The token was revoked."}},
		{name: "unknown notice ignored", method: "GET", target: "/?done=%3Cb%3Ehi", token: aliceToken, status: 200},
		{name: "other path is the host's", method: "GET", target: "/nope", status: 404},
		{name: "signin page", method: "GET", target: "/signin?return_to=%2Fdevice", status: 200,
			contains: []string{"Sign in with Example SSO", `href="/signin/sso?return_to=%2Fdevice"`, `name="return_to" value="/device"`, `<label for="username">`}},
		{name: "device form prefilled", method: "GET", target: "/device?user_code=WDJB-MJHT", token: aliceToken, status: 200, contains: []string{`value="WDJB-MJHT"`}},
		{name: "device form signed out", method: "GET", target: "/device?user_code=WDJB-MJHT", status: 303, location: "/signin?return_to=%2Fdevice%3Fuser_code%3DWDJB-MJHT"},
		{name: "device lookup", method: "POST", target: "/device", token: aliceToken, form: url.Values{"user_code": {"wdjbmjht"}}, status: 200,
			contains: []string{"Only approve if you started this yourself", `name="decision" value="approve"`, `name="decision" value="deny"`, `name="user_code" value="WDJB-MJHT"`}},
		{name: "device lookup bad code", method: "POST", target: "/device", token: aliceToken, form: url.Values{"user_code": {"NOPE-NOPE"}}, status: 404,
			contains: []string{"That code is not valid or has expired", `value="NOPE-NOPE"`}},
		{name: "device lookup empty code", method: "POST", target: "/device", token: aliceToken, form: url.Values{"user_code": {"  "}}, status: 400},
		{name: "device approve", method: "POST", target: "/device/decide", token: aliceToken, form: url.Values{"user_code": {goodUserCode}, "decision": {"approve"}}, status: 200,
			contains: []string{"You approved"}},
		{name: "device deny", method: "POST", target: "/device/decide", token: aliceToken, form: url.Values{"user_code": {goodUserCode}, "decision": {"deny"}}, status: 200,
			contains: []string{"You denied"}},
		{name: "device decide no decision", method: "POST", target: "/device/decide", token: aliceToken, form: url.Values{"user_code": {goodUserCode}, "decision": {"maybe"}}, status: 400},
		{name: "device decide spent code", method: "POST", target: "/device/decide", token: aliceToken, form: url.Values{"user_code": {"OLD1-CODE"}, "decision": {"approve"}}, status: 404,
			contains: []string{"That code is not valid or has expired"}},
		{name: "revoke session", method: "POST", target: "/sessions/revoke", token: aliceToken, form: url.Values{"id": {"s1"}}, status: 303, location: "/?done=session-revoked"},
		{name: "revoke unknown session", method: "POST", target: "/sessions/revoke", token: aliceToken, form: url.Values{"id": {"bobs"}}, status: 404},
		{name: "revoke session no id", method: "POST", target: "/sessions/revoke", token: aliceToken, status: 400},
		{name: "revoke pat", method: "POST", target: "/pats/revoke", token: aliceToken, form: url.Values{"id": {"p1"}}, status: 303, location: "/?done=pat-revoked"},
		{name: "revoke unknown pat", method: "POST", target: "/pats/revoke", token: aliceToken, form: url.Values{"id": {"p9"}}, status: 404},
		{name: "sign out", method: "POST", target: "/signout", token: aliceToken, status: 303, location: "/signin"},
		{name: "post signed out", method: "POST", target: "/pats", status: 303, location: "/signin?return_to=%2F"},
		{name: "stylesheet", method: "GET", target: "/static/style.css", status: 200, contains: []string{":focus-visible"}},
		{name: "method not allowed", method: "PUT", target: "/signin/password", status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			var rec *httptest.ResponseRecorder
			if tt.method == "POST" {
				rec = h.post(tt.target, tt.token, tt.form)
			} else {
				r := httptest.NewRequest(tt.method, publicURL+tt.target, nil)
				if tt.token != "" {
					r.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: tt.token})
				}
				rec = h.do(r)
			}
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body:\n%s", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			for _, s := range tt.contains {
				if !strings.Contains(rec.Body.String(), s) {
					t.Errorf("body lacks %q:\n%s", s, rec.Body)
				}
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
		"X-Content-Type-Options":  "nosniff",
	}
	for _, rec := range []*httptest.ResponseRecorder{
		h.get("/", aliceToken), h.get("/", ""), h.get("/signin", ""), h.get("/device", aliceToken),
		h.get("/signin/callback?error=access_denied", ""), h.post("/pats", aliceToken, url.Values{"csrf": {"bad"}}),
		h.post("/device", aliceToken, url.Values{"user_code": {goodUserCode}}), h.get("/static/style.css", ""),
	} {
		for k, v := range want {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%d answer: %s = %q, want %q", rec.Code, k, got, v)
			}
		}
		if rec.Header().Get("Content-Type") == "text/html; charset=utf-8" && rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("page Cache-Control = %q, want no-store", rec.Header().Get("Cache-Control"))
		}
	}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	tests := []struct {
		publicURL, name string
		secure          bool
	}{
		{"https://auth.example.com", "__Host-portcullis", true},
		{"http://localhost:5001", "portcullis_session", false},
	}
	for _, tt := range tests {
		t.Run(tt.publicURL, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *pages.Options) { o.PublicURL = tt.publicURL })
			page := h.get("/signin", "")
			pre := cookie(page, map[bool]string{true: "__Host-pc_csrf", false: "pc_csrf"}[tt.secure])
			if pre == nil || !pre.HttpOnly || pre.SameSite != http.SameSiteStrictMode || pre.Secure != tt.secure || pre.Path != "/" {
				t.Fatalf("pre-sign-in CSRF cookie = %+v", pre)
			}
			r := httptest.NewRequest("POST", tt.publicURL+"/signin/password", strings.NewReader(url.Values{
				"username": {"alice"}, "password": {alicePassword}, "csrf": {pre.Value}, "return_to": {"/device?user_code=AB"},
			}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Origin", tt.publicURL)
			r.AddCookie(pre)
			rec := h.do(r)
			if rec.Code != 303 || rec.Header().Get("Location") != "/device?user_code=AB" {
				t.Fatalf("sign-in = %d to %q:\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
			}
			c := cookie(rec, tt.name)
			if c == nil {
				t.Fatalf("no %s cookie in %v", tt.name, rec.Result().Cookies())
			}
			if c.Value != aliceToken || !c.HttpOnly || c.Secure != tt.secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("session cookie = %+v", c)
			}
			if c.MaxAge != int((12 * time.Hour).Seconds()) {
				t.Errorf("MaxAge = %d, want the session's 12h", c.MaxAge)
			}
			if h.fake.password.GetRemoteAddr() != "192.0.2.10" {
				t.Errorf("remote_addr = %q, want ClientAddr's", h.fake.password.GetRemoteAddr())
			}
		})
	}
}

// TestCSRF attacks every signed-in form: no token, a wrong one, another session's, one in
// the query string instead of the body. None reaches authn's mutating call.
func TestCSRF(t *testing.T) {
	t.Parallel()
	forms := []struct {
		target, call string
		form         url.Values
	}{
		{"/signout", "SignOut", nil},
		{"/sessions/revoke", "RevokeMySession", url.Values{"id": {"s1"}}},
		{"/pats", "CreateMyPersonalAccessToken", url.Values{"name": {"x"}, "expires": {"7"}}},
		{"/pats/revoke", "RevokeMyPersonalAccessToken", url.Values{"id": {"p1"}}},
		{"/device", "LookupDevice", url.Values{"user_code": {goodUserCode}}},
		{"/device/decide", "DecideDevice", url.Values{"user_code": {goodUserCode}, "decision": {"approve"}}},
	}
	attacks := []struct {
		name  string
		token func(url.Values) // edits the form
		query string
	}{
		{name: "missing", token: func(v url.Values) { v.Del("csrf") }},
		{name: "empty", token: func(v url.Values) { v.Set("csrf", "") }},
		{name: "wrong", token: func(v url.Values) { v.Set("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") }},
		{name: "other session's", token: func(v url.Values) { v.Set("csrf", csrf(bobToken)) }},
		{name: "in the query", token: func(v url.Values) { v.Del("csrf") }, query: "?csrf=" + url.QueryEscape(csrf(aliceToken))},
	}
	for _, f := range forms {
		for _, a := range attacks {
			t.Run(f.target+"/"+a.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				form := url.Values{"csrf": {csrf(aliceToken)}}
				for k, v := range f.form {
					form[k] = v
				}
				a.token(form)
				if _, ok := form["csrf"]; !ok {
					form["csrf"] = nil // keep post from filling it in
				}
				rec := h.post(f.target+a.query, aliceToken, form)
				if rec.Code != http.StatusForbidden {
					t.Fatalf("status = %d, want 403", rec.Code)
				}
				if h.fake.called(f.call) {
					t.Errorf("%s ran despite the bad CSRF token", f.call)
				}
			})
		}
		t.Run(f.target+"/valid", func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if rec := h.post(f.target, aliceToken, f.form); rec.Code == http.StatusForbidden || !h.fake.called(f.call) {
				t.Errorf("valid form: status %d, %s called: %v", rec.Code, f.call, h.fake.called(f.call))
			}
		})
	}
}

func TestPasswordFormCSRF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cookie, field string
		status        int
	}{
		{"ok", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3Q", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3Q", 303},
		{"no cookie", "", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3Q", 403},
		{"no field", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3Q", "", 403},
		{"mismatch", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3Q", "Q2xlYXJseSByYW5kb20gZW5vdWdoIGZvciBhIHRlc3R", 403},
		{"both empty", "", "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			r := postReq("/signin/password", url.Values{"username": {"alice"}, "password": {alicePassword}, "csrf": {tt.field}})
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: tt.cookie})
			}
			rec := h.do(r)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if tt.status == 403 && h.fake.called("PasswordSignIn") {
				t.Error("PasswordSignIn ran despite the bad CSRF token")
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, origin, fetchSite string
		ok                      bool
	}{
		{"same origin", publicURL, "same-origin", true},
		{"no origin (old client)", "", "", true},
		{"other site", "https://evil.example", "cross-site", false},
		{"other site, no fetch metadata", "https://evil.example", "", false},
		{"sibling subdomain", "https://app.example.com", "same-site", false},
		{"plain http of our host", "http://auth.example.com", "", false},
		{"other port", "https://auth.example.com:8443", "", false},
		{"null (sandboxed or redirected)", "null", "", false},
		{"cross-site without origin", "", "cross-site", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			for _, target := range []string{"/pats/revoke", "/signin/password"} {
				r := postReq(target, url.Values{"id": {"p1"}, "csrf": {csrf(aliceToken)}, "username": {"alice"}, "password": {alicePassword}})
				r.Header.Del("Origin")
				r.Header.Del("Sec-Fetch-Site")
				if tt.origin != "" {
					r.Header.Set("Origin", tt.origin)
				}
				if tt.fetchSite != "" {
					r.Header.Set("Sec-Fetch-Site", tt.fetchSite)
				}
				r.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: aliceToken})
				r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: csrf(aliceToken)})
				rec := h.do(r)
				if got := rec.Code != http.StatusForbidden; got != tt.ok {
					t.Errorf("%s: status %d, accepted = %v, want %v", target, rec.Code, got, tt.ok)
				}
			}
		})
	}
}

func TestOriginOfPublicURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		publicURL, origin string
		ok                bool
	}{
		{"https://auth.example.com:443/", "https://auth.example.com", true},
		{"https://Auth.Example.com", "https://auth.example.com", true},
		{"http://localhost:5001", "http://localhost:5001", true},
		{"http://localhost:5001", "http://localhost:5002", false},
		{"http://[::1]:80", "http://[::1]", true},
		{"", "https://auth.example.com", false}, // no public URL: fail closed
	}
	for _, tt := range tests {
		t.Run(tt.publicURL+" "+tt.origin, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *pages.Options) { o.PublicURL = tt.publicURL })
			r := postReq("/signin/password", url.Values{"username": {"alice"}, "password": {alicePassword}, "csrf": {"c"}})
			r.Header.Set("Origin", tt.origin)
			r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: "c"})
			r.AddCookie(&http.Cookie{Name: "pc_csrf", Value: "c"})
			if got := h.do(r).Code != http.StatusForbidden; got != tt.ok {
				t.Errorf("accepted = %v, want %v", got, tt.ok)
			}
		})
	}
}

func TestReturnToIsNeverAnOpenRedirect(t *testing.T) {
	t.Parallel()
	tests := []struct{ returnTo, want string }{
		{"//evil.com", "/"},
		{`/\evil.com`, "/"},
		{`/\/evil.com`, "/"},
		{"https://evil.com", "/"},
		{"https:evil.com", "/"},
		{"javascript:alert(1)", "/"},
		{"/\t/evil.com", "/"},
		{"/ok\r\nSet-Cookie: x=1", "/"},
		{"evil.com", "/"},
		{"", "/"},
		{"/ok?x=1", "/ok?x=1"},
		{"/device?user_code=WDJB-MJHT", "/device?user_code=WDJB-MJHT"},
	}
	for _, tt := range tests {
		t.Run(tt.returnTo, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			// The password form.
			r := postReq("/signin/password", url.Values{"username": {"alice"}, "password": {alicePassword}, "csrf": {"c"}, "return_to": {tt.returnTo}})
			r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: "c"})
			if rec := h.do(r); rec.Header().Get("Location") != tt.want {
				t.Errorf("password sign-in: Location = %q, want %q", rec.Header().Get("Location"), tt.want)
			}
			// The SSO start, whose return_to authn seals into the flow.
			h.get("/signin/sso?return_to="+url.QueryEscape(tt.returnTo), "")
			if got := h.fake.begin.GetReturnTo(); got != tt.want {
				t.Errorf("BeginSignIn return_to = %q, want %q", got, tt.want)
			}
			// And what CompleteSignIn answers, should authn ever hand one back.
			h.fake.returnTo = tt.returnTo
			r = httptest.NewRequest("GET", publicURL+"/signin/callback?code="+idpCode+"&state="+idpState, nil)
			r.AddCookie(&http.Cookie{Name: "pc_flow", Value: sealedFlow})
			if rec := h.do(r); rec.Header().Get("Location") != tt.want {
				t.Errorf("callback: Location = %q, want %q", rec.Header().Get("Location"), tt.want)
			}
			// The sign-in page carries it only when it is local.
			page := h.get("/signin?return_to="+url.QueryEscape(tt.returnTo), "").Body.String()
			if strings.Contains(page, "evil.com") {
				t.Errorf("sign-in page carries the foreign return_to:\n%s", page)
			}
		})
	}
}

func TestSSOFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.returnTo = "/device"
	rec := h.get("/signin/sso?return_to=%2Fdevice", "")
	if rec.Code != 303 || rec.Header().Get("Location") != "https://idp.example.com/authorize?state="+idpState {
		t.Fatalf("start = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if got := h.fake.begin.GetRedirectUri(); got != publicURL+"/signin/callback" {
		t.Errorf("redirect_uri = %q", got)
	}
	flow := cookie(rec, "pc_flow")
	if flow == nil || flow.Value != sealedFlow || !flow.HttpOnly || !flow.Secure || flow.SameSite != http.SameSiteLaxMode || flow.Path != "/signin" || flow.MaxAge != 600 {
		t.Fatalf("flow cookie = %+v", flow)
	}

	r := httptest.NewRequest("GET", publicURL+"/signin/callback?code="+idpCode+"&state="+idpState, nil)
	r.Header.Set("User-Agent", "Firefox/140")
	r.AddCookie(flow)
	rec = h.do(r)
	if rec.Code != 303 || rec.Header().Get("Location") != "/device" {
		t.Fatalf("callback = %d to %q:\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if c := h.fake.complete; c.GetFlow() != sealedFlow || c.GetCode() != idpCode || c.GetState() != idpState ||
		c.GetRedirectUri() != publicURL+"/signin/callback" || c.GetRemoteAddr() != "192.0.2.10" || c.GetUserAgent() != "Firefox/140" {
		t.Errorf("CompleteSignIn got %v", c)
	}
	if c := cookie(rec, "pc_flow"); c == nil || c.MaxAge >= 0 {
		t.Errorf("flow cookie not cleared: %+v", c)
	}
	if c := cookie(rec, "__Host-portcullis"); c == nil || c.Value != aliceToken || c.MaxAge != 8*3600 {
		t.Errorf("session cookie = %+v", c)
	}
}

func TestCallbackFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query string
		flow        bool
		status      int
		complete    bool
		contains    string
	}{
		{"idp refused", "?error=access_denied&error_description=" + url.QueryEscape(hostile), true, 403, false, "cancelled or refused at Example SSO"},
		{"idp other error", "?error=" + url.QueryEscape(hostile), true, 400, false, "Example SSO could not sign you in"},
		{"no flow cookie", "?code=" + idpCode + "&state=" + idpState, false, 400, false, "started in another browser"},
		{"no code", "?state=" + idpState, true, 400, false, "could not be completed"},
		{"wrong state", "?code=" + idpCode + "&state=forged", true, 400, true, "could not be completed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			r := httptest.NewRequest("GET", publicURL+"/signin/callback"+tt.query, nil)
			if tt.flow {
				r.AddCookie(&http.Cookie{Name: "pc_flow", Value: sealedFlow})
			}
			rec := h.do(r)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if h.fake.called("CompleteSignIn") != tt.complete {
				t.Errorf("CompleteSignIn called = %v, want %v", !tt.complete, tt.complete)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q:\n%s", tt.contains, body)
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "alert(") {
				t.Errorf("the IdP's error text reached the page:\n%s", body)
			}
			if cookie(rec, "__Host-portcullis") != nil {
				t.Error("a failed callback set a session cookie")
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	const detail = "backend db0 exploded at 10.0.0.3"
	tests := []struct {
		name       string
		method     string // the fake's method that fails
		err        error
		do         func(h *harness) *httptest.ResponseRecorder
		status     int
		location   string
		contains   string
		clearsSess bool
	}{
		{name: "session over on a page", method: "ListMySessions", err: status.Error(codes.Unauthenticated, "expired"),
			do: func(h *harness) *httptest.ResponseRecorder { return h.get("/", aliceToken) }, status: 303, location: "/signin?return_to=%2F", clearsSess: true},
		{name: "session over on the device form", method: "LookupDevice", err: status.Error(codes.Unauthenticated, "expired"),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/device", aliceToken, url.Values{"user_code": {goodUserCode}})
			}, status: 303, location: "/signin?return_to=%2Fdevice%3Fuser_code%3DWDJB-MJHT", clearsSess: true},
		{name: "rate limited device lookup", method: "LookupDevice", err: status.Error(codes.ResourceExhausted, "slow down"),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/device", aliceToken, url.Values{"user_code": {"AAAA-BBBB"}})
			}, status: 429, contains: "too many attempts"},
		{name: "locked out password", method: "PasswordSignIn", err: status.Error(codes.ResourceExhausted, "locked"),
			do: signInAlice, status: 429, contains: "Too many attempts"},
		{name: "refused person", method: "PasswordSignIn", err: status.Error(codes.PermissionDenied, "robot"),
			do: signInAlice, status: 403, contains: "Your account may not sign in here"},
		{name: "refused person at the IdP", method: "CompleteSignIn", err: status.Error(codes.PermissionDenied, "not in group"),
			do: func(h *harness) *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", publicURL+"/signin/callback?code=c&state=s", nil)
				r.AddCookie(&http.Cookie{Name: "pc_flow", Value: sealedFlow})
				return h.do(r)
			}, status: 403, contains: "Your account may not sign in here"},
		{name: "invalid argument shows its message, escaped", method: "CreateMyPersonalAccessToken", err: status.Error(codes.InvalidArgument, `name "<b>" is not valid`),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/pats", aliceToken, url.Values{"name": {"<b>"}, "expires": {"7"}})
			}, status: 400, contains: `name &#34;&lt;b&gt;&#34; is not valid`},
		{name: "invalid argument on a revoke", method: "RevokeMySession", err: status.Error(codes.InvalidArgument, "bad id"),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/sessions/revoke", aliceToken, url.Values{"id": {"s1"}})
			}, status: 400, contains: "bad id"},
		{name: "no sso configured in authn", method: "BeginSignIn", err: status.Error(codes.FailedPrecondition, "no sso"),
			do: func(h *harness) *httptest.ResponseRecorder { return h.get("/signin/sso", "") }, status: 404},
		{name: "authn down", method: "GetAccount", err: status.Error(codes.Unavailable, detail),
			do: func(h *harness) *httptest.ResponseRecorder { return h.get("/", aliceToken) }, status: 503, contains: "try again"},
		{name: "authn slow", method: "ListMyPersonalAccessTokens", err: status.Error(codes.DeadlineExceeded, detail),
			do: func(h *harness) *httptest.ResponseRecorder { return h.get("/", aliceToken) }, status: 503},
		{name: "internal", method: "DecideDevice", err: status.Error(codes.Internal, detail),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/device/decide", aliceToken, url.Values{"user_code": {goodUserCode}, "decision": {"approve"}})
			}, status: 503},
		{name: "not a status at all", method: "SignOut", err: errors.New(detail),
			do: func(h *harness) *httptest.ResponseRecorder { return h.post("/signout", aliceToken, nil) }, status: 503},
		{name: "duplicate token name", method: "CreateMyPersonalAccessToken", err: status.Error(codes.AlreadyExists, "exists"),
			do: func(h *harness) *httptest.ResponseRecorder {
				return h.post("/pats", aliceToken, url.Values{"name": {"ci-builds"}, "expires": {"7"}})
			}, status: 409, contains: "already have a token with that name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.fake.errs[tt.method] = tt.err
			rec := tt.do(h)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d:\n%s", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			body := rec.Body.String()
			if !strings.Contains(strings.ToLower(body), strings.ToLower(tt.contains)) {
				t.Errorf("body lacks %q:\n%s", tt.contains, body)
			}
			if strings.Contains(body, detail) {
				t.Errorf("internal detail reached the page:\n%s", body)
			}
			if rec.Code == 503 && !strings.Contains(h.logs.String(), detail) {
				t.Errorf("internal detail not logged: %s", h.logs)
			}
			c := cookie(rec, "__Host-portcullis")
			if tt.clearsSess != (c != nil && c.MaxAge < 0) {
				t.Errorf("session cookie %+v, want cleared = %v", c, tt.clearsSess)
			}
		})
	}
}

func signInAlice(h *harness) *httptest.ResponseRecorder {
	r := postReq("/signin/password", url.Values{"username": {"alice"}, "password": {alicePassword}, "csrf": {"c"}})
	r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: "c"})
	return h.do(r)
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := postReq("/signin/password", url.Values{"username": {hostile}, "password": {"guess"}, "csrf": {"c"}, "return_to": {"/device"}})
	r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: "c"})
	rec := h.do(r)
	body := rec.Body.String()
	if rec.Code != 400 || !strings.Contains(body, "Wrong username or password") {
		t.Fatalf("status %d:\n%s", rec.Code, body)
	}
	if strings.Contains(body, "guess") {
		t.Error("the password was rendered back")
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("the username was not escaped")
	}
	if !strings.Contains(body, `name="return_to" value="/device"`) {
		t.Error("return_to lost on the error page")
	}
	if cookie(rec, "__Host-portcullis") != nil {
		t.Error("a failed sign-in set a session cookie")
	}
}

func TestSignInMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		sso, password bool
		has, hasNot   []string
	}{
		{"both", true, true, []string{"Sign in with Example SSO", `action="/signin/password"`}, nil},
		{"sso only", true, false, []string{"Sign in with Example SSO"}, []string{`action="/signin/password"`}},
		{"password only", false, true, []string{`action="/signin/password"`}, []string{"/signin/sso"}},
		{"none", false, false, []string{"No way of signing in"}, []string{"/signin/sso", `action="/signin/password"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *pages.Options) { o.SSO, o.Password = tt.sso, tt.password })
			body := h.get("/signin", "").Body.String()
			for _, s := range tt.has {
				if !strings.Contains(body, s) {
					t.Errorf("lacks %q", s)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(body, s) {
					t.Errorf("has %q", s)
				}
			}
			if !tt.sso {
				if rec := h.get("/signin/sso", ""); rec.Code != 404 || h.fake.called("BeginSignIn") {
					t.Errorf("SSO start without SSO: %d", rec.Code)
				}
			}
			if !tt.password {
				if rec := signInAlice(h); rec.Code != 404 || h.fake.called("PasswordSignIn") {
					t.Errorf("password sign-in without passwords: %d", rec.Code)
				}
			}
		})
	}
}

func TestIdPNameDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *pages.Options) { o.IdPName = "" })
	if body := h.get("/signin", "").Body.String(); !strings.Contains(body, "Sign in with your identity provider") {
		t.Errorf("default IdP name missing:\n%s", body)
	}
}

func TestPATCreatedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := h.post("/pats", aliceToken, url.Values{"name": {"ci-builds2"}, "expires": {"30"}, "scopes": {"repository:team/*:pull\r\n\r\n  repository:team/app:push  \n"}})
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("status %d:\n%s", rec.Code, body)
	}
	for _, s := range []string{
		"<code>" + patSecret + "</code>",
		"docker login -u alice -p " + patSecret + " registry.example.com",
		"only time it is shown",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("the secret page may be cached")
	}
	c := h.fake.create
	if c.GetName() != "ci-builds2" || c.GetExpiresIn().AsDuration() != 30*24*time.Hour ||
		strings.Join(c.GetScopes(), "|") != "repository:team/*:pull|repository:team/app:push" {
		t.Errorf("CreateMyPersonalAccessToken got %v", c)
	}
	// Nothing else ever shows it.
	for _, other := range []*httptest.ResponseRecorder{h.get("/", aliceToken), h.post("/pats/revoke", aliceToken, url.Values{"id": {"p1"}})} {
		if strings.Contains(other.Body.String(), patSecret) {
			t.Error("the secret shows up again")
		}
	}
	if strings.Contains(h.logs.String(), patSecret) {
		t.Error("the secret was logged")
	}
}

func TestPATForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		form       url.Values
		status     int
		contains   string
		wantExpiry time.Duration // 0: no create call
	}{
		{"over the cap", url.Values{"name": {"a"}, "expires": {"365"}}, 400, "at most 90 days", 0},
		{"no expiry", url.Values{"name": {"a"}}, 400, "Choose when the token expires", 0},
		{"negative", url.Values{"name": {"a"}, "expires": {"-5"}}, 400, "Choose when", 0},
		{"garbage", url.Values{"name": {"a"}, "expires": {"1e9"}}, 400, "Choose when", 0},
		{"no name", url.Values{"name": {"  "}, "expires": {"7"}}, 400, "Give the token a name", 0},
		{"too many scopes", url.Values{"name": {"a"}, "expires": {"7"}, "scopes": {strings.Repeat("repository:a:pull\n", 51)}}, 400, "at most 50 scopes", 0},
		{"max", url.Values{"name": {"a"}, "expires": {"max"}}, 200, patSecret, 90 * 24 * time.Hour},
		{"at the cap", url.Values{"name": {"a"}, "expires": {"90"}}, 200, patSecret, 90 * 24 * time.Hour},
		{"name too long", url.Values{"name": {strings.Repeat("a", 65)}, "expires": {"7"}}, 400, "too long", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			rec := h.post("/pats", aliceToken, tt.form)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Fatalf("status %d (want %d), want %q in:\n%s", rec.Code, tt.status, tt.contains, rec.Body)
			}
			if got := h.fake.create.GetExpiresIn().AsDuration(); got != tt.wantExpiry {
				t.Errorf("expires_in = %v, want %v", got, tt.wantExpiry)
			}
			if tt.status == 400 && rec.Header().Get("Location") == "" && strings.Contains(rec.Body.String(), "Create a token") {
				// The form came back: what was typed is still there.
				if n := tt.form.Get("name"); len(n) < 64 && !strings.Contains(rec.Body.String(), `value="`+n+`"`) {
					t.Errorf("typed name lost")
				}
			}
		})
	}
}

func TestPATsOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.patsOff = true
	if body := h.get("/", aliceToken).Body.String(); strings.Contains(body, "Personal access tokens") {
		t.Error("token section shown with tokens off")
	}
	if h.fake.called("ListMyPersonalAccessTokens") {
		t.Error("listed tokens with tokens off")
	}
	if rec := h.post("/pats", aliceToken, url.Values{"name": {"a"}, "expires": {"7"}}); rec.Code != 404 || h.fake.called("CreateMyPersonalAccessToken") {
		t.Errorf("create with tokens off: %d", rec.Code)
	}
}

func TestExpiryOptionsFollowTheCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cap      time.Duration
		has, not []string
	}{
		{90 * 24 * time.Hour, []string{`value="7"`, `value="30" selected`, `value="90"`}, []string{`value="180"`, `value="max"`}},
		{14 * 24 * time.Hour, []string{`value="7"`, `value="max" selected`, "14 days"}, []string{`value="30"`}},
		{12 * time.Hour, []string{`value="max" selected`, "12 hours"}, []string{`value="1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.cap.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.fake.patMax = tt.cap
			body := h.get("/", aliceToken).Body.String()
			for _, s := range tt.has {
				if !strings.Contains(body, s) {
					t.Errorf("lacks %q", s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(body, s) {
					t.Errorf("has %q", s)
				}
			}
		})
	}
}

func TestDeviceConfirmPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := h.post("/device", aliceToken, url.Values{"user_code": {" wdjbmjht "}})
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	for _, s := range []string{
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", // the client_id, escaped
		"203.0.113.7",
		"portcullis-cli/1.4 (linux; amd64) &lt;b&gt;bold&lt;/b&gt;",
		"registry.example.com",
		"repository:team/app:pull,push",
		`<time datetime="2026-12-07T11:59:00Z">7 Dec 2026, 11:59 UTC</time>`,
		"Only approve if you started this yourself",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("confirm page lacks %q", s)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>bold") {
		t.Error("hostile device text rendered as HTML")
	}
	if got := h.fake.lookup; got.GetUserCode() != "wdjbmjht" || got.GetRemoteAddr() != "192.0.2.10" {
		t.Errorf("LookupDevice got %v", got)
	}
	// The approval names the code the lookup answered with, and the caller's address.
	rec = h.post("/device/decide", aliceToken, url.Values{"user_code": {goodUserCode}, "decision": {"deny"}})
	if d := h.fake.decide; rec.Code != 200 || d.GetApprove() || d.GetUserCode() != goodUserCode || d.GetRemoteAddr() != "192.0.2.10" {
		t.Errorf("DecideDevice got %v (status %d)", d, rec.Code)
	}
	h.post("/device/decide", aliceToken, url.Values{"user_code": {goodUserCode}, "decision": {"approve"}})
	if !h.fake.decide.GetApprove() {
		t.Error("approve did not approve")
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, rec := range []*httptest.ResponseRecorder{
		h.get("/", aliceToken), // a session's client_id and a group are hostile
		h.get("/device?user_code="+url.QueryEscape(`"><script>x</script>`), aliceToken),
		h.post("/device", aliceToken, url.Values{"user_code": {`"><script>x</script>`}}),
		h.get("/signin?return_to="+url.QueryEscape(`/"><script>x</script>`), ""),
	} {
		if b := rec.Body.String(); strings.Contains(b, "<script") {
			t.Errorf("unescaped markup in a %d page:\n%s", rec.Code, b)
		}
	}
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := h.post("/signout", aliceToken, nil)
	if c := cookie(rec, "__Host-portcullis"); rec.Code != 303 || c == nil || c.MaxAge >= 0 {
		t.Fatalf("sign-out: %d, cookie %+v", rec.Code, c)
	}
	if rec := h.get("/", aliceToken); rec.Code != 303 {
		t.Errorf("the session lives on: %d", rec.Code)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", 70<<10)
	tests := []struct {
		name, target string
		form         url.Values
		status       int
	}{
		{"huge token form", "/pats", url.Values{"name": {"a"}, "expires": {"7"}, "scopes": {big}}, 413},
		{"huge sign-in", "/signin/password", url.Values{"username": {"alice"}, "password": {big}}, 413},
		{"huge device code", "/device", url.Values{"user_code": {strings.Repeat("A", 65)}}, 400},
		{"long password", "/signin/password", url.Values{"username": {"alice"}, "password": {strings.Repeat("p", 1025)}}, 400},
		{"long id", "/sessions/revoke", url.Values{"id": {strings.Repeat("1", 129)}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			form := cloneForm(tt.form)
			form.Set("csrf", csrf(aliceToken))
			r := postReq(tt.target, form)
			r.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: aliceToken})
			r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: csrf(aliceToken)})
			rec := h.do(r)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			for _, m := range []string{"PasswordSignIn", "CreateMyPersonalAccessToken", "LookupDevice", "RevokeMySession"} {
				if h.fake.called(m) {
					t.Errorf("%s ran", m)
				}
			}
		})
	}
}

// TestNoSecretsInLogs runs every flow, failures included, and looks for any secret in the log.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	signInAlice(h)
	h.get("/signin/sso", "")
	r := httptest.NewRequest("GET", publicURL+"/signin/callback?code="+idpCode+"&state="+idpState, nil)
	r.AddCookie(&http.Cookie{Name: "pc_flow", Value: sealedFlow})
	h.do(r)
	h.post("/pats", aliceToken, url.Values{"name": {"x"}, "expires": {"7"}})
	h.post("/device", aliceToken, url.Values{"user_code": {goodUserCode}})
	h.post("/pats", aliceToken, url.Values{"name": {"x"}, "expires": {"7"}, "csrf": {"forged"}})
	for _, m := range []string{"PasswordSignIn", "CompleteSignIn", "GetAccount", "LookupDevice", "DecideDevice", "CreateMyPersonalAccessToken"} {
		h.fake.errs[m] = status.Error(codes.Unavailable, "down")
	}
	signInAlice(h)
	h.do(r)
	h.get("/", aliceToken)
	h.post("/device", aliceToken, url.Values{"user_code": {goodUserCode}})
	h.post("/device/decide", aliceToken, url.Values{"user_code": {goodUserCode}, "decision": {"approve"}})
	h.post("/pats", aliceToken, url.Values{"name": {"x"}, "expires": {"7"}})
	logs := h.logs.String()
	if logs == "" {
		t.Fatal("nothing logged: the test proves nothing")
	}
	for _, secret := range []string{aliceToken, alicePassword, patSecret, idpCode, sealedFlow, goodUserCode, csrf(aliceToken)} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds %q:\n%s", secret, logs)
		}
	}
}
