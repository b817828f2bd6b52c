package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const formType = "application/x-www-form-urlencoded"

// dockerRefreshForm is what the docker daemon posts with a stored identity token
// (distribution registry/client/auth: grant_type, refresh_token, client_id, service, scope
// joined by spaces).
func dockerRefreshForm(token string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"docker"},
		"service": {"registry.local"}, "scope": {"repository:a/b:pull repository:c/d:pull,push"}}
}

func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			delete(out, kv[i])
			continue
		}
		out.Set(kv[i], kv[i+1])
	}
	return out
}

func withDup(v url.Values, key, val string) url.Values {
	out := with(v)
	out.Add(key, val)
	return out
}

// TestRefreshProtocol: sessions as real clients use them. docker logs in with GET
// offline_token=true and refreshes with a POST form; containerd logs in with a POST password
// grant (access_type=offline), refreshes with another client_id, and falls back to GET with
// Basic ""/refresh token. Every refusal is 4xx JSON, and a refresh token is never logged.
func TestRefreshProtocol(t *testing.T) {
	t.Parallel()
	passwordForm := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"},
		"access_type": {"offline"}, "client_id": {"containerd-client"}, "service": {"registry.local"}, "scope": {"repository:a/b:pull"}}
	type basic struct{ user, pass string }
	cases := []struct {
		name        string
		method      string // GET sends query, POST sends form with contentType
		query       string
		basic       *basic
		form        url.Values
		rawBody     string // instead of form
		contentType string // POST only; "-" sends none
		authnErr    error

		wantStatus    int
		wantError     string
		wantRefresh   string // refresh_token in the answer ("" = absent)
		wantRPC       string // "authenticate", "refresh" or "" (authn not called)
		wantOffline   bool   // AuthenticateRequest.offline
		wantGrant     string // audit event's grant_type ("" = no request parsed)
		wantChallenge bool
		wantDesc      string // in error_description
	}{
		// GET: docker login and containerd's fallback.
		{name: "docker login offline_token", method: "GET", query: "service=registry.local&offline_token=true&client_id=docker&account=alice",
			basic: &basic{"alice", "pw"}, wantStatus: 200, wantRefresh: fakeIssuedToken, wantRPC: "authenticate", wantOffline: true, wantGrant: "password"},
		{name: "GET without offline_token", method: "GET", query: "service=registry.local&client_id=docker",
			basic: &basic{"alice", "pw"}, wantStatus: 200, wantRPC: "authenticate", wantGrant: "password"},
		{name: "GET offline_token=false", method: "GET", query: "service=registry.local&offline_token=false",
			basic: &basic{"alice", "pw"}, wantStatus: 200, wantRPC: "authenticate", wantGrant: "password"},
		{name: "anonymous offline_token gets no session", method: "GET", query: "service=registry.local&offline_token=true&scope=repository:a/b:pull",
			wantStatus: 200, wantGrant: "anonymous"},
		{name: "GET offline wrong password", method: "GET", query: "service=registry.local&offline_token=true",
			basic: &basic{"alice", "nope"}, wantStatus: 401, wantError: "unauthorized", wantRPC: "authenticate", wantOffline: true, wantGrant: "password", wantChallenge: true},
		{name: "containerd GET fallback empty user", method: "GET", query: "service=registry.local&scope=repository:a/b:pull&client_id=containerd-client",
			basic: &basic{"", fakeRefreshToken}, wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "containerd GET fallback with offline_token", method: "GET", query: "service=registry.local&scope=repository:a/b:pull&offline_token=true",
			basic: &basic{"", fakeRefreshToken}, wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "GET <token> user", method: "GET", query: "service=registry.local&scope=repository:a/b:pull",
			basic: &basic{"<token>", fakeRefreshToken}, wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "GET refresh ignores account", method: "GET", query: "service=registry.local&account=alice",
			basic: &basic{"", fakeRefreshToken}, wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "GET unknown refresh token", method: "GET", query: "service=registry.local",
			basic: &basic{"", "pcr_unknownDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"}, wantStatus: 401, wantError: "unauthorized", wantRPC: "refresh", wantGrant: "refresh_token", wantChallenge: true},
		{name: "GET refresh token of another service", method: "GET", query: "service=registry.local",
			basic: &basic{"", fakeOtherServiceToken}, wantStatus: 401, wantError: "unauthorized", wantRPC: "refresh", wantGrant: "refresh_token", wantChallenge: true},
		{name: "GET empty user, not a refresh token", method: "GET", query: "service=registry.local",
			basic: &basic{"", "pw"}, wantStatus: 401, wantError: "unauthorized", wantGrant: "password", wantChallenge: true},
		{name: "GET <token> user with a password is a login", method: "GET", query: "service=registry.local",
			basic: &basic{"<token>", "pw"}, wantStatus: 401, wantError: "unauthorized", wantRPC: "authenticate", wantGrant: "password", wantChallenge: true},
		{name: "GET refresh authn down", method: "GET", query: "service=registry.local",
			basic: &basic{"", fakeRefreshToken}, authnErr: status.Error(codes.Unavailable, "store down"), wantStatus: 503, wantError: "temporarily_unavailable", wantRPC: "refresh", wantGrant: "refresh_token"},

		// POST: the OAuth2 form.
		{name: "docker refresh grant", method: "POST", form: dockerRefreshForm(fakeRefreshToken),
			wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "containerd refresh with its own client_id and charset", method: "POST", contentType: formType + "; charset=utf-8",
			form: with(dockerRefreshForm(fakeRefreshToken), "client_id", "containerd-client"), wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		// containerd sets access_type=offline on whichever grant when it wants a refresh token.
		{name: "containerd refresh with access_type=offline", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "client_id", "containerd-client", "access_type", "offline"),
			wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "refresh without scope", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "scope", "\x00"),
			wantStatus: 200, wantRefresh: fakeRefreshToken, wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "containerd login access_type=offline", method: "POST", form: passwordForm,
			wantStatus: 200, wantRefresh: fakeIssuedToken, wantRPC: "authenticate", wantOffline: true, wantGrant: "password"},
		{name: "password grant online", method: "POST", form: with(passwordForm, "access_type", "online"),
			wantStatus: 200, wantRPC: "authenticate", wantGrant: "password"},
		{name: "password grant without access_type", method: "POST", form: with(passwordForm, "access_type", "\x00"),
			wantStatus: 200, wantRPC: "authenticate", wantGrant: "password"},
		{name: "bad access_type", method: "POST", form: with(passwordForm, "access_type", "forever"),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "password"},
		{name: "offline login wrong password", method: "POST", form: with(passwordForm, "password", "nope"),
			wantStatus: 400, wantError: "invalid_grant", wantRPC: "authenticate", wantOffline: true, wantGrant: "password"},
		{name: "unknown refresh token", method: "POST", form: dockerRefreshForm("pcr_unknownDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"),
			wantStatus: 400, wantError: "invalid_grant", wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "refresh token of another service", method: "POST", form: dockerRefreshForm(fakeOtherServiceToken),
			wantStatus: 400, wantError: "invalid_grant", wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "not a refresh token", method: "POST", form: dockerRefreshForm("eyJhbGciOi.not.ours"),
			wantStatus: 400, wantError: "invalid_grant", wantGrant: "refresh_token"},
		{name: "refresh_token missing", method: "POST", form: with(dockerRefreshForm(""), "refresh_token", "\x00"),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "refresh_token"},
		{name: "refresh_token empty", method: "POST", form: dockerRefreshForm(""),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "refresh_token"},
		{name: "refresh without client_id", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "client_id", "\x00"),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "refresh_token"},
		{name: "refresh without service", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "service", "\x00"),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "refresh_token"},
		{name: "refresh for an unknown service", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "service", "other.local"),
			wantStatus: 400, wantError: "invalid_request", wantGrant: "refresh_token"},
		{name: "refresh with a malformed scope", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "scope", "repository:UPPER:pull"),
			wantStatus: 400, wantError: "invalid_scope", wantGrant: "refresh_token"},
		{name: "duplicate refresh_token", method: "POST", form: withDup(dockerRefreshForm(fakeRefreshToken), "refresh_token", fakeOtherServiceToken),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "duplicate grant_type", method: "POST", form: withDup(dockerRefreshForm(fakeRefreshToken), "grant_type", "password"),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "duplicate client_id", method: "POST", form: withDup(dockerRefreshForm(fakeRefreshToken), "client_id", "x"),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "duplicate scope", method: "POST", form: withDup(dockerRefreshForm(fakeRefreshToken), "scope", "repository:x:pull"),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "duplicate password", method: "POST", form: withDup(passwordForm, "password", "pw"),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "client_credentials grant", method: "POST", form: with(dockerRefreshForm(fakeRefreshToken), "grant_type", "client_credentials"),
			wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "authorization_code grant", method: "POST", form: url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"docker"}},
			wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "JSON body", method: "POST", contentType: "application/json", rawBody: `{"grant_type":"refresh_token","refresh_token":"` + fakeRefreshToken + `"}`,
			wantStatus: 400, wantError: "invalid_request", wantDesc: "x-www-form-urlencoded"},
		{name: "form data as text/plain", method: "POST", contentType: "text/plain", rawBody: dockerRefreshForm(fakeRefreshToken).Encode(),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "x-www-form-urlencoded"},
		{name: "multipart", method: "POST", contentType: "multipart/form-data; boundary=x", rawBody: "--x\r\n\r\n--x--\r\n",
			wantStatus: 400, wantError: "invalid_request", wantDesc: "x-www-form-urlencoded"},
		{name: "no content type", method: "POST", contentType: "-", rawBody: dockerRefreshForm(fakeRefreshToken).Encode(),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "x-www-form-urlencoded"},
		{name: "malformed content type", method: "POST", contentType: "application/x-www-form-urlencoded;;=", rawBody: dockerRefreshForm(fakeRefreshToken).Encode(),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "x-www-form-urlencoded"},
		{name: "malformed form", method: "POST", rawBody: "grant_type=refresh_token&refresh_token=%zz",
			wantStatus: 400, wantError: "invalid_request"},
		{name: "huge body", method: "POST", rawBody: "grant_type=refresh_token&refresh_token=pcr_" + strings.Repeat("A", 1<<20),
			wantStatus: 400, wantError: "invalid_request"},
		{name: "refresh authn busy", method: "POST", form: dockerRefreshForm(fakeRefreshToken), authnErr: status.Error(codes.ResourceExhausted, "store pool exhausted"),
			wantStatus: 429, wantError: "temporarily_unavailable", wantRPC: "refresh", wantGrant: "refresh_token"},
		{name: "refresh authn fault", method: "POST", form: dockerRefreshForm(fakeRefreshToken), authnErr: status.Error(codes.Internal, "sqlite: disk I/O error"),
			wantStatus: 500, wantError: "server_error", wantRPC: "refresh", wantGrant: "refresh_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{authnErr: tc.authnErr, noServer: true})
			var req *http.Request
			if tc.method == "GET" {
				req = httptest.NewRequest("GET", "/token?"+tc.query, nil)
				if tc.basic != nil {
					req.SetBasicAuth(tc.basic.user, tc.basic.pass)
				}
			} else {
				body := tc.rawBody
				if tc.form != nil {
					body = tc.form.Encode()
				}
				req = httptest.NewRequest("POST", "/token", strings.NewReader(body))
				switch tc.contentType {
				case "":
					req.Header.Set("Content-Type", formType)
				case "-":
				default:
					req.Header.Set("Content-Type", tc.contentType)
				}
			}
			// A recorder, not a connection: a server that stops reading a huge body may reset
			// the connection before the client reads the answer.
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			resp := rec.Result()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, raw)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("answer is not JSON: %q", raw)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.wantChallenge {
				t.Fatalf("WWW-Authenticate = %q, want a challenge: %v", resp.Header.Get("WWW-Authenticate"), tc.wantChallenge)
			}
			if tc.wantStatus == 200 {
				rt, _ := m["refresh_token"].(string)
				if rt != tc.wantRefresh {
					t.Fatalf("refresh_token = %q, want %q", rt, tc.wantRefresh)
				}
				// A bare token is an error for OAuth clients: access_token is always there.
				if m["access_token"] == nil || m["access_token"] == "" || m["access_token"] != m["token"] || m["expires_in"] == nil || m["issued_at"] == nil {
					t.Fatalf("answer %s", raw)
				}
				if tc.method == "POST" && m["token_type"] != "Bearer" {
					t.Fatalf("token_type in %s", raw)
				}
			} else {
				if d, _ := m["error_description"].(string); m["error"] != tc.wantError || d == "" || !strings.Contains(d, tc.wantDesc) || m["refresh_token"] != nil {
					t.Fatalf("body = %s, want error %q with a description", raw, tc.wantError)
				}
				for _, leak := range []string{"store", "sqlite", "pool"} {
					if strings.Contains(string(raw), leak) {
						t.Fatalf("internal text reached the client: %s", raw)
					}
				}
			}
			switch tc.wantRPC {
			case "":
				if n := e.authn.calls.Load(); n != 0 {
					t.Fatalf("authn called %d times", n)
				}
			case "authenticate":
				in := e.authn.last.Load()
				if in == nil || e.authn.lastRefresh.Load() != nil || in.GetOffline() != tc.wantOffline {
					t.Fatalf("Authenticate request %v, want offline %v (and no Refresh)", in, tc.wantOffline)
				}
			case "refresh":
				in := e.authn.lastRefresh.Load()
				if in == nil || e.authn.last.Load() != nil || in.GetService() != "registry.local" || in.GetRemoteAddr() == "" {
					t.Fatalf("Refresh request %v (Authenticate %v)", in, e.authn.last.Load())
				}
				if tc.method == "POST" && in.GetClientId() != tc.form.Get("client_id") {
					t.Fatalf("Refresh client_id %q, want %q", in.GetClientId(), tc.form.Get("client_id"))
				}
			}
			events := e.auditEvents(t)
			if len(events) != 1 {
				t.Fatalf("%d audit events, want 1", len(events))
			}
			if g, _ := events[0]["grant_type"].(string); g != tc.wantGrant {
				t.Fatalf("audit grant_type %q, want %q: %v", g, tc.wantGrant, events[0])
			}
			if tc.wantStatus == 200 && tc.wantGrant != "anonymous" && events[0]["subject"] != "alice" {
				t.Fatalf("audit subject %v", events[0])
			}
			// A refresh grant uses a session; only an offline login starts one.
			if want := tc.wantRefresh != "" && tc.wantGrant == "password"; tc.wantStatus == 200 && events[0]["session_issued"] != want {
				t.Fatalf("audit session_issued %v, want %v", events[0]["session_issued"], want)
			}
			// Neither a refresh token nor a password is ever logged, audit events included.
			for _, secret := range []string{"pcr_", `"pw"`, "signed."} {
				if strings.Contains(e.log.String(), secret) {
					t.Fatalf("the log holds a secret (%q):\n%s", secret, e.log.String())
				}
			}
		})
	}
}

// TestRefreshGrantEchoesTheSameToken: docker discards a new refresh token mid-push, so two
// refreshes in a row must both work and both answer the token the client sent.
func TestRefreshGrantEchoesTheSameToken(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envConfig{})
	for i := range 2 {
		resp, err := http.PostForm(e.srv.URL+"/token", dockerRefreshForm(fakeRefreshToken))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 200 || m["refresh_token"] != fakeRefreshToken {
			t.Fatalf("refresh %d: %d %v", i, resp.StatusCode, m)
		}
		// Both space-separated scopes reached the policy; only pulls are granted by the fake.
		if m["scope"] != "repository:a/b:pull repository:c/d:pull" || e.signer.last.GetSubject() != "alice" {
			t.Fatalf("refresh %d: scope %v, subject %q", i, m["scope"], e.signer.last.GetSubject())
		}
	}
	if n := e.authn.calls.Load(); n != 2 {
		t.Fatalf("authn called %d times, want every refresh to ask it", n)
	}
}

// TestUndeliveredRefreshTokenEndsItsSession: when a token request fails after an offline login
// created a session, the client never sees the refresh token, so the gateway ends that
// session. A failed refresh grant leaves the client's own session alone.
func TestUndeliveredRefreshTokenEndsItsSession(t *testing.T) {
	t.Parallel()
	down := status.Error(codes.Unavailable, "down")
	login := "/token?service=registry.local&offline_token=true&scope=repository:a/b:pull"
	cases := []struct {
		name               string
		authzErr, signErr  error
		path, user, secret string
		wantStatus         int
		wantEnded          string // refresh token whose session was ended ("" = none)
	}{
		{"login delivered", nil, nil, login, "alice", "pw", 200, ""},
		{"login, signer fails", nil, down, login, "alice", "pw", 503, fakeIssuedToken},
		{"login, authz fails", down, nil, login, "alice", "pw", 503, fakeIssuedToken},
		{"online login, signer fails", nil, down, "/token?service=registry.local&scope=repository:a/b:pull", "alice", "pw", 503, ""},
		{"refresh, signer fails", nil, down, "/token?service=registry.local&scope=repository:a/b:pull", "", fakeRefreshToken, 503, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{authzErr: tc.authzErr, signerErr: tc.signErr})
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+tc.path, nil)
			req.SetBasicAuth(tc.user, tc.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			got := ""
			if in := e.authn.ended.Load(); in != nil {
				got = in.GetRefreshToken()
			}
			if got != tc.wantEnded {
				t.Errorf("EndSession got token %q, want %q", got, tc.wantEnded)
			}
		})
	}
}
