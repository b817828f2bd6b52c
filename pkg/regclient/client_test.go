package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// seen is one request the fake token endpoint received.
type seen struct {
	method     string
	query      url.Values // GET: the query; POST: the form
	user, pass string
	basic      bool
}

// fakeRealm is a token endpoint that knows alice/secret and the refresh token rt-alice.
// post is what POST /token does: "" serves the OAuth2 form, otherwise it answers with that
// status and body.
type fakeRealm struct {
	post       func(w http.ResponseWriter)
	anonymous  bool        // hand anonymous callers a token
	answer     string      // replaces every successful answer's body when set
	mu         *sync.Mutex // a pointer: the test table copies its fakeRealms
	seen       []seen
	srv        *httptest.Server
	tokenField string // "token" or "access_token" (default both)
}

func newFakeRealm(t *testing.T, f *fakeRealm) *fakeRealm {
	t.Helper()
	f.mu = &sync.Mutex{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRealm) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.seen...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeRealm) serve(w http.ResponseWriter, r *http.Request) {
	s := seen{method: r.Method}
	s.user, s.pass, s.basic = r.BasicAuth()
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		s.query = r.PostForm
	} else {
		s.query = r.URL.Query()
	}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	f.mu.Unlock()

	ok := func(user string, refresh bool) {
		if f.answer != "" {
			_, _ = w.Write([]byte(f.answer))
			return
		}
		a := map[string]any{"expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"}
		switch f.tokenField {
		case "token":
			a["token"] = "tok-" + user
		case "access_token":
			a["access_token"] = "tok-" + user
		default:
			a["token"], a["access_token"] = "tok-"+user, "tok-"+user
		}
		if refresh {
			a["refresh_token"] = "rt-" + user
		}
		writeJSON(w, http.StatusOK, a)
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case !s.basic && f.anonymous:
			ok("anonymous", false)
		case !s.basic:
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "authentication required"}}})
		case s.user == "alice" && s.pass == "secret":
			ok("alice", s.query.Get("offline_token") == "true")
		case (s.user == "" || s.user == "alice") && s.pass == "rt-alice":
			ok("alice", true)
		default:
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized", "error_description": "invalid username or password"})
		}
	case http.MethodPost:
		if f.post != nil {
			f.post(w)
			return
		}
		q := s.query
		switch {
		case q.Get("grant_type") == "password" && q.Get("username") == "alice" && q.Get("password") == "secret":
			ok("alice", q.Get("access_type") == "offline")
		case q.Get("grant_type") == "refresh_token" && q.Get("refresh_token") == "rt-alice":
			ok("alice", true)
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "invalid username or password"})
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// bearer is the challenge a registry trusting f sends.
func (f *fakeRealm) bearer() Challenge {
	return Challenge{Scheme: "bearer", Params: map[string]string{"realm": f.srv.URL + "/token", "service": "reg.test"}, Registry: "http://reg.test"}
}

// newClient has a transport of its own: httptest.Server.Close closes the idle connections of
// http.DefaultTransport, which breaks requests of parallel tests sharing it.
func newClient() *Client {
	return &Client{HTTP: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
}

func TestFetchToken(t *testing.T) {
	t.Parallel()
	status := func(code int, body any) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { writeJSON(w, code, body) }
	}
	type want struct {
		token, refresh, method, grant string
		fellBack                      int // the POST status that sent the client to GET; 0: none
		// requests are "METHOD user:pass" (Basic) or "METHOD -" (none), in order.
		requests []string
		// params must be in the last request's query or form.
		params url.Values
		// absent must not be there.
		absent []string
		// errStatus and errText describe the expected *StatusError.
		errStatus int
		errText   string
	}
	cases := []struct {
		name  string
		realm fakeRealm
		req   Request
		want  want
	}{
		{name: "GET with Basic, docker's way", req: Request{Scopes: []string{"repository:a/b:pull,push", "repository:c:pull"}, Credentials: Credentials{Username: "alice", Password: "secret"}},
			want: want{token: "tok-alice", method: "GET", grant: "password", requests: []string{"GET alice:secret"},
				params: url.Values{"service": {"reg.test"}, "scope": {"repository:a/b:pull,push", "repository:c:pull"}, "account": {"alice"}, "client_id": {"portcullis-token"}},
				absent: []string{"offline_token"}}},
		{name: "GET offline: a refresh token", req: Request{Credentials: Credentials{Username: "alice", Password: "secret"}, Offline: true},
			want: want{token: "tok-alice", refresh: "rt-alice", method: "GET", grant: "password", requests: []string{"GET alice:secret"},
				params: url.Values{"offline_token": {"true"}}, absent: []string{"scope"}}},
		{name: "GET refused: 401 and the realm's message", req: Request{Credentials: Credentials{Username: "alice", Password: "wrong"}},
			want: want{requests: []string{"GET alice:wrong"}, errStatus: 401, errText: "401 Unauthorized: invalid username or password"}},
		{name: "anonymous where the realm allows it", realm: fakeRealm{anonymous: true}, req: Request{Scopes: []string{"repository:pub:pull"}},
			want: want{token: "tok-anonymous", method: "GET", grant: "anonymous", requests: []string{"GET -"}, absent: []string{"account", "offline_token"}}},
		{name: "anonymous refused", req: Request{Offline: true},
			want: want{requests: []string{"GET -"}, errStatus: 401, errText: "anonymously: 401 Unauthorized: authentication required (UNAUTHORIZED)"}},
		{name: "OAuth2 POST password grant, offline", req: Request{Scopes: []string{"repository:a:pull", "repository:b:push"}, Credentials: Credentials{Username: "alice", Password: "secret"}, OAuth: true, Offline: true},
			want: want{token: "tok-alice", refresh: "rt-alice", method: "POST", grant: "password", requests: []string{"POST -"},
				params: url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"secret"}, "access_type": {"offline"},
					"client_id": {"portcullis-token"}, "service": {"reg.test"}, "scope": {"repository:a:pull repository:b:push"}}}},
		{name: "OAuth2 POST refused: invalid_grant is not retried by GET", req: Request{Credentials: Credentials{Username: "alice", Password: "wrong"}, OAuth: true},
			want: want{requests: []string{"POST -"}, errStatus: 400, errText: "invalid username or password (invalid_grant)"}},
		{name: "refresh grant by POST", req: Request{Credentials: Credentials{IdentityToken: "rt-alice"}},
			want: want{token: "tok-alice", refresh: "rt-alice", method: "POST", grant: "refresh_token", requests: []string{"POST -"},
				params: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-alice"}}, absent: []string{"username", "password"}}},
		{name: "refresh grant: POST 404 falls back to GET", realm: fakeRealm{post: status(404, map[string]string{"error": "not_found"})},
			req:  Request{Credentials: Credentials{IdentityToken: "rt-alice"}},
			want: want{token: "tok-alice", refresh: "rt-alice", method: "GET", grant: "refresh_token", fellBack: 404, requests: []string{"POST -", "GET :rt-alice"}, absent: []string{"account"}}},
		{name: "refresh grant with a user: POST 405 falls back to GET with that user", realm: fakeRealm{post: status(405, nil)},
			req:  Request{Credentials: Credentials{Username: "alice", IdentityToken: "rt-alice"}},
			want: want{token: "tok-alice", method: "GET", grant: "refresh_token", refresh: "rt-alice", fellBack: 405, requests: []string{"POST -", "GET alice:rt-alice"}}},
		{name: "password grant: POST 400 unsupported_grant_type falls back to GET", realm: fakeRealm{post: status(400, map[string]string{"error": "unsupported_grant_type"})},
			req:  Request{Credentials: Credentials{Username: "alice", Password: "secret"}, OAuth: true},
			want: want{token: "tok-alice", method: "GET", grant: "password", fellBack: 400, requests: []string{"POST -", "GET alice:secret"}, params: url.Values{"account": {"alice"}}}},
		{name: "refresh grant: POST 400 without an OAuth2 body falls back (ACR)", realm: fakeRealm{post: status(400, map[string]any{"errors": []map[string]string{{"code": "UNSUPPORTED"}}})},
			req:  Request{Credentials: Credentials{IdentityToken: "rt-alice"}},
			want: want{token: "tok-alice", method: "GET", grant: "refresh_token", refresh: "rt-alice", fellBack: 400, requests: []string{"POST -", "GET :rt-alice"}}},
		{name: "POST 401 is a refusal, not a fallback", realm: fakeRealm{post: status(401, map[string]string{"error": "unauthorized", "error_description": "bad refresh token"})},
			req:  Request{Credentials: Credentials{IdentityToken: "rt-alice"}},
			want: want{requests: []string{"POST -"}, errStatus: 401, errText: "POST http://"}},
		{name: "fallback GET refused", realm: fakeRealm{post: status(404, nil)},
			req:  Request{Credentials: Credentials{IdentityToken: "rt-bob"}},
			want: want{requests: []string{"POST -", "GET :rt-bob"}, errStatus: 401, errText: "with the refresh token: 401 Unauthorized"}},
		{name: "access_token alone", realm: fakeRealm{tokenField: "access_token"}, req: Request{Credentials: Credentials{Username: "alice", Password: "secret"}},
			want: want{token: "tok-alice", method: "GET", grant: "password", requests: []string{"GET alice:secret"}}},
		{name: "token alone", realm: fakeRealm{tokenField: "token"}, req: Request{Credentials: Credentials{Username: "alice", Password: "secret"}},
			want: want{token: "tok-alice", method: "GET", grant: "password", requests: []string{"GET alice:secret"}}},
		{name: "200 without a token", realm: fakeRealm{answer: `{"expires_in":60}`}, req: Request{Credentials: Credentials{Username: "alice", Password: "secret"}},
			want: want{requests: []string{"GET alice:secret"}, errText: "answered 200 without a token"}},
		{name: "200 that is not JSON", realm: fakeRealm{answer: `<html>hi</html>`}, req: Request{Credentials: Credentials{Username: "alice", Password: "secret"}},
			want: want{requests: []string{"GET alice:secret"}, errText: "not a token answer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRealm(t, &tc.realm)
			res, err := newClient().FetchToken(context.Background(), f.bearer(), tc.req)
			var got []string
			for _, s := range f.requests() {
				creds := "-"
				if s.basic {
					creds = s.user + ":" + s.pass
				}
				got = append(got, s.method+" "+creds)
			}
			if !reflect.DeepEqual(got, tc.want.requests) {
				t.Errorf("requests = %q, want %q", got, tc.want.requests)
			}
			if tc.want.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.errText) {
					t.Fatalf("FetchToken = %+v, %v; want an error containing %q", res, err, tc.want.errText)
				}
				var se *StatusError
				if tc.want.errStatus != 0 && (!errors.As(err, &se) || se.StatusCode != tc.want.errStatus) {
					t.Fatalf("FetchToken error %v is not a *StatusError with status %d", err, tc.want.errStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("FetchToken: %v", err)
			}
			if res.Token != tc.want.token || res.RefreshToken != tc.want.refresh || res.Method != tc.want.method || res.Grant != tc.want.grant {
				t.Errorf("result: token %q refresh %q method %s grant %s; want %q %q %s %s",
					res.Token, res.RefreshToken, res.Method, res.Grant, tc.want.token, tc.want.refresh, tc.want.method, tc.want.grant)
			}
			if res.ExpiresIn != 300 || res.Service != "reg.test" || res.Realm != f.srv.URL+"/token" {
				t.Errorf("result: expires_in %d service %q realm %q", res.ExpiresIn, res.Service, res.Realm)
			}
			switch {
			case tc.want.fellBack == 0 && res.FellBack != nil:
				t.Errorf("fell back after %v, want no fallback", res.FellBack)
			case tc.want.fellBack != 0 && (res.FellBack == nil || res.FellBack.StatusCode != tc.want.fellBack):
				t.Errorf("FellBack = %v, want a %d", res.FellBack, tc.want.fellBack)
			}
			reqs := f.requests()
			last := reqs[len(reqs)-1].query
			for k, v := range tc.want.params {
				if !reflect.DeepEqual(last[k], v) {
					t.Errorf("last request's %s = %q, want %q (all: %v)", k, last[k], v, last)
				}
			}
			for _, k := range tc.want.absent {
				if _, ok := last[k]; ok {
					t.Errorf("last request has %s=%q, want none", k, last[k])
				}
			}
		})
	}
}

// TestFetchTokenScopeFromChallenge: without scopes of its own the client asks for the one
// the registry named in its challenge (a 401 for a specific repository carries it).
func TestFetchTokenScopeFromChallenge(t *testing.T) {
	t.Parallel()
	f := newFakeRealm(t, &fakeRealm{})
	ch := f.bearer()
	ch.Params["scope"] = "repository:a:pull repository:b:pull"
	res, err := newClient().FetchToken(context.Background(), ch, Request{Credentials: Credentials{Username: "alice", Password: "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"repository:a:pull", "repository:b:pull"}; !reflect.DeepEqual(res.Scopes, want) || !reflect.DeepEqual(f.requests()[0].query["scope"], want) {
		t.Fatalf("scopes %q, sent %q; want %q", res.Scopes, f.requests()[0].query["scope"], want)
	}
}

func TestFetchTokenBadChallenge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ch   Challenge
		want string
	}{
		{Challenge{Scheme: "basic", Params: map[string]string{"realm": "x"}}, `"basic" challenge has no token endpoint`},
		{Challenge{Scheme: "bearer", Params: map[string]string{"service": "s"}}, "names no realm"},
		{Challenge{Scheme: "bearer", Params: map[string]string{"realm": "ftp://a/token"}}, "not an http(s) URL"},
		{Challenge{Scheme: "bearer", Params: map[string]string{"realm": "/token"}}, "not an http(s) URL"},
	}
	for _, tc := range cases {
		if _, err := newClient().FetchToken(context.Background(), tc.ch, Request{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FetchToken(%v) = %v, want %q", tc.ch, err, tc.want)
		}
	}
}

// fakeRegistry answers /v2/ with handler's status and headers.
func fakeRegistry(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPing(t *testing.T) {
	t.Parallel()
	challenge := func(values ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for _, v := range values {
				w.Header().Add("WWW-Authenticate", v)
			}
			w.WriteHeader(http.StatusUnauthorized)
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    []string // schemes; nil: open
		wantErr string
	}{
		{name: "open registry", handler: func(w http.ResponseWriter, r *http.Request) {}, want: nil},
		{name: "Bearer", handler: challenge(`Bearer realm="https://a/token",service="s"`), want: []string{"bearer"}},
		{name: "two header lines", handler: challenge(`Basic realm="x"`, `Bearer realm="y"`), want: []string{"basic", "bearer"}},
		{name: "401 without a challenge", handler: challenge(), wantErr: "without a WWW-Authenticate"},
		{name: "malformed challenge", handler: challenge(`Bearer realm="x`), wantErr: "no closing quote"},
		{name: "not a registry", handler: http.NotFound, wantErr: "404 Not Found: no registry API here"},
		{name: "server error", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down for\x1b[31m maintenance", 503) },
			wantErr: "503 Service Unavailable: down for?[31m maintenance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chs, err := newClient().Ping(context.Background(), fakeRegistry(t, tc.handler)+"/")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Ping = %v, %v; want an error containing %q", chs, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range chs {
				got = append(got, c.Scheme)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Ping schemes = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPingUnreachableAndPlainHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	plain := strings.Replace(srv.URL, "http://", "https://", 1)
	if _, err := newClient().Ping(context.Background(), plain); err == nil || !strings.Contains(err.Error(), "plain HTTP: use an http:// URL") {
		t.Errorf("Ping(https to a plain HTTP server) = %v, want the plain-HTTP hint", err)
	}
	srv.Close()
	if _, err := newClient().Ping(context.Background(), srv.URL); err == nil || !strings.Contains(err.Error(), "GET "+srv.URL+"/v2/") {
		t.Errorf("Ping(closed server) = %v, want an error naming the URL", err)
	}
}

func TestCheckBasic(t *testing.T) {
	t.Parallel()
	reg := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "AWS" && p == "pw" {
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "authentication required"}}})
	})
	c := newClient()
	ctx := context.Background()
	if err := c.CheckBasic(ctx, reg, Credentials{Username: "AWS", Password: "pw"}); err != nil {
		t.Errorf("good credentials: %v", err)
	}
	err := c.CheckBasic(ctx, reg, Credentials{Username: "AWS", Password: "nope"})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 401 || !strings.Contains(err.Error(), "as AWS: 401 Unauthorized: authentication required (UNAUTHORIZED)") {
		t.Errorf("wrong password: %v, want a 401 StatusError with the registry's message", err)
	}
	if err := c.CheckBasic(ctx, reg, Credentials{}); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no credentials: %v, want ErrNoCredentials", err)
	}
	if err := c.CheckBasic(ctx, reg, Credentials{IdentityToken: "rt"}); err == nil || !strings.Contains(err.Error(), "not an identity token") {
		t.Errorf("identity token: %v", err)
	}
}

func TestReasonFromBody(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body, code, msg string
	}{
		{`{"error":"invalid_grant","error_description":"invalid username or password"}`, "invalid_grant", "invalid username or password"},
		{`{"error":"unauthorized"}`, "unauthorized", ""},
		{`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"},{"code":"X","message":"and more"}]}`,
			"DENIED", "requested access to the resource is denied; and more"},
		{`{"details":"incorrect username or password"}`, "", "incorrect username or password"},
		{`{"error":{"nested":true},"message":"object error"}`, "", "object error"},
		{"Unauthorized\nsecond line", "", "Unauthorized"},
		{"<html><body>Bad gateway</body></html>", "", ""},
		{"evil \x1b]0;title\x07 text", "", "evil ?]0;title? text"},
		{strings.Repeat("x", 400), "", strings.Repeat("x", 300) + "…"},
		{"", "", ""},
	}
	for _, tc := range cases {
		code, msg := reasonFromBody([]byte(tc.body))
		if code != tc.code || msg != tc.msg {
			t.Errorf("reasonFromBody(%q) = %q, %q; want %q, %q", tc.body, code, msg, tc.code, tc.msg)
		}
	}
}

func TestCredentialsStringHidesSecrets(t *testing.T) {
	t.Parallel()
	for _, c := range []Credentials{{Username: "alice", Password: "hunter2"}, {Username: "alice", IdentityToken: "hunter2"}, {}} {
		if s := c.String(); strings.Contains(s, "hunter2") {
			t.Errorf("Credentials.String() = %q shows the secret", s)
		}
	}
}
