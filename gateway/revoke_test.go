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

// TestRevoke: RFC 7009 at POST /revoke, every answer's status and body. A refresh-shaped token
// ends its session through authn whoever it belongs to and whether or not it exists, with the
// same empty 200 (§2.2: no oracle); anything that is not a Portcullis refresh token never
// reaches authn. The attack cases: another user's token (RFC 7009's model: holding it is the
// authority — the holder could as well have used it), a robot key and a PAT-looking string
// (200, nothing happens), a 1 MB token, the form in the query string (refused: URLs are logged).
func TestRevoke(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	jwt := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	unknown := "pcr_" + strings.Repeat("Z", 43)
	enc := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	cases := []struct {
		name, method, query, ctype, body string
		authnErr                         error
		wantStatus                       int
		wantError, wantDesc              string // "" wantError: an empty body
		wantEnded                        string // the token authn was asked to end; "" = authn not asked
	}{
		{name: "own refresh token", body: enc("token", fakeRefreshToken, "client_id", "portcullis-logout"),
			wantStatus: 200, wantEnded: fakeRefreshToken},
		{name: "hint refresh_token", body: enc("token", fakeRefreshToken, "token_type_hint", "refresh_token"),
			wantStatus: 200, wantEnded: fakeRefreshToken},
		// §2.1: a wrong hint does not stop the server from finding the token.
		{name: "refresh token hinted access_token", body: enc("token", fakeRefreshToken, "token_type_hint", "access_token"),
			wantStatus: 200, wantEnded: fakeRefreshToken},
		{name: "unknown hint ignored", body: enc("token", fakeRefreshToken, "token_type_hint", "id_token"),
			wantStatus: 200, wantEnded: fakeRefreshToken},
		// The same answer as for a live one: expired, revoked and never-issued look alike.
		{name: "unknown refresh token", body: enc("token", unknown), wantStatus: 200, wantEnded: unknown},
		{name: "someone else's token", body: enc("token", fakeOtherServiceToken), wantStatus: 200, wantEnded: fakeOtherServiceToken},
		{name: "robot key", body: enc("token", "pcp_"+strings.Repeat("k", 43)), wantStatus: 200},
		{name: "PAT-looking", body: enc("token", "pat_"+strings.Repeat("p", 40)), wantStatus: 200},
		{name: "garbage", body: enc("token", "hunter2"), wantStatus: 200},
		{name: "access token", body: enc("token", jwt),
			wantStatus: 400, wantError: "unsupported_token_type", wantDesc: "short-lived, stateless JWTs"},
		{name: "access token hint", body: enc("token", "opaque", "token_type_hint", "access_token"),
			wantStatus: 400, wantError: "unsupported_token_type", wantDesc: "cannot be revoked"},
		{name: "no token", body: enc("client_id", "x"), wantStatus: 400, wantError: "invalid_request", wantDesc: "token is required"},
		{name: "empty token", body: enc("token", ""), wantStatus: 400, wantError: "invalid_request", wantDesc: "token is required"},
		{name: "empty body", wantStatus: 400, wantError: "invalid_request", wantDesc: "token is required"},
		{name: "token twice", body: enc("token", fakeRefreshToken, "token", unknown),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "token must be given once"},
		{name: "hint twice", body: enc("token", fakeRefreshToken, "token_type_hint", "refresh_token", "token_type_hint", "access_token"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "token_type_hint must be given once"},
		{name: "GET", method: http.MethodGet, wantStatus: 400, wantError: "invalid_request", wantDesc: "revoke with POST"},
		{name: "GET with the token in the query", method: http.MethodGet, query: enc("token", fakeRefreshToken),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "revoke with POST"},
		{name: "PUT", method: http.MethodPut, body: enc("token", fakeRefreshToken),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "revoke with POST"},
		{name: "token in the query string", query: enc("token", fakeRefreshToken),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "not the URL"},
		{name: "query beside a good body", query: "token_type_hint=refresh_token", body: enc("token", fakeRefreshToken),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "not the URL"},
		{name: "JSON body", ctype: "application/json", body: `{"token":"` + fakeRefreshToken + `"}`,
			wantStatus: 400, wantError: "invalid_request", wantDesc: "application/x-www-form-urlencoded"},
		{name: "no content type", ctype: "-", body: enc("token", fakeRefreshToken),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "application/x-www-form-urlencoded"},
		{name: "charset parameter", ctype: form + "; charset=utf-8", body: enc("token", fakeRefreshToken),
			wantStatus: 200, wantEnded: fakeRefreshToken},
		{name: "1 MB token", body: enc("token", "pcr_"+strings.Repeat("A", 1<<20)),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "request body too long"},
		{name: "malformed form", body: "token=%zz", wantStatus: 400, wantError: "invalid_request", wantDesc: "malformed form body"},
		// The session may still be live: the client must not think it ended.
		{name: "authn unavailable", body: enc("token", fakeRefreshToken), authnErr: status.Error(codes.Unavailable, "down"),
			wantStatus: 503, wantError: "temporarily_unavailable", wantDesc: "retry shortly", wantEnded: "(asked)"},
		{name: "authn fails", body: enc("token", fakeRefreshToken), authnErr: status.Error(codes.Internal, "disk on fire"),
			wantStatus: 500, wantError: "server_error", wantDesc: "internal error", wantEnded: "(asked)"},
		// authn is not asked for what is not its token, down or not.
		{name: "robot key, authn down", body: enc("token", "pcp_x"), authnErr: status.Error(codes.Unavailable, "down"), wantStatus: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{authnErr: tc.authnErr})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			target := e.srv.URL + "/revoke"
			if tc.query != "" {
				target += "?" + tc.query
			}
			req, err := http.NewRequest(method, target, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", form)
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
			}
			if tc.wantError == "" {
				if len(body) != 0 {
					t.Fatalf("body %q, want empty (RFC 7009 §2.2)", body)
				}
			} else {
				var got struct{ Error, ErrorDescription string }
				var m map[string]string
				if err := json.Unmarshal(body, &m); err != nil || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("body %q (%s) is not a JSON error: %v", body, resp.Header.Get("Content-Type"), err)
				}
				got.Error, got.ErrorDescription = m["error"], m["error_description"]
				if got.Error != tc.wantError || !strings.Contains(got.ErrorDescription, tc.wantDesc) {
					t.Fatalf("error %q (%q), want %q containing %q", got.Error, got.ErrorDescription, tc.wantError, tc.wantDesc)
				}
			}
			if method != http.MethodPost && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
			calls := e.authn.endCalls.Load()
			switch {
			case tc.wantEnded == "" && calls != 0:
				t.Fatalf("authn EndSession called %d times, want never", calls)
			case tc.wantEnded == "(asked)" && calls != 1:
				t.Fatalf("authn EndSession called %d times, want once", calls)
			case tc.wantEnded != "" && tc.wantEnded != "(asked)":
				in := e.authn.ended.Load()
				if in == nil || in.GetRefreshToken() != tc.wantEnded || calls != 1 {
					t.Fatalf("EndSession calls %d, last %v; want one for %.12s…", calls, in, tc.wantEnded)
				}
				if in.GetRemoteAddr() == "" {
					t.Error("EndSession without the caller's address (authn's audit event wants it)")
				}
			}
			if e.authn.calls.Load() != 0 {
				t.Error("revocation authenticated or refreshed: it must only end sessions")
			}
			// One audit event per request, and no token anywhere in the log.
			var revocations int
			for _, ev := range e.auditEvents(t) {
				if ev["msg"] == "token revocation" {
					revocations++
				}
			}
			if revocations != 1 {
				t.Errorf("%d revocation audit events, want 1:\n%s", revocations, e.log.String())
			}
			for _, secret := range []string{fakeRefreshToken, fakeOtherServiceToken, unknown, jwt, "pcp_", "pat_", "hunter2"} {
				if strings.Contains(e.log.String(), secret) {
					t.Fatalf("the log holds a token (%.8s…):\n%s", secret, e.log.String())
				}
			}
		})
	}
}

// FuzzRevoke: whatever a client sends to /revoke, with an authn that succeeds, the answer is an
// empty 200 or a JSON 400 naming its OAuth2 error, never a 5xx or a panic, and the token is
// never logged.
func FuzzRevoke(f *testing.F) {
	for _, s := range []string{
		"token=" + fakeRefreshToken, "token=" + fakeRefreshToken + "&token_type_hint=refresh_token&client_id=portcullis-logout",
		"token=pcr_&token=pcr_", "token=eyJ.eyJ.x", "token=x&token_type_hint=access_token", "", "token=", "%zz", "&&==&",
		`{"token":"pcr_x"}`,
	} {
		for _, ct := range []string{"application/x-www-form-urlencoded", "application/json", "", ";;="} {
			f.Add("POST", "", s, ct)
		}
		f.Add("GET", s, "", "")
		f.Add("POST", s, s, "application/x-www-form-urlencoded")
	}
	f.Fuzz(func(t *testing.T, method, query, body, contentType string) {
		e := newEnvWith(t, envConfig{noServer: true})
		req, err := http.NewRequest(method, "/revoke", strings.NewReader(body))
		if err != nil {
			return // not a method net/http would send
		}
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			if rec.Body.Len() != 0 {
				t.Fatalf("200 with a body: %q", rec.Body.String())
			}
		case rec.Code == http.StatusBadRequest:
			var m map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["error"] == "" {
				t.Fatalf("400 without a JSON OAuth error: %q", rec.Body.String())
			}
		default:
			t.Fatalf("%s ?%q %q (%q): status %d", method, query, body, contentType, rec.Code)
		}
		if tok := e.authn.ended.Load().GetRefreshToken(); len(tok) > 8 && strings.Contains(e.log.String(), tok) {
			t.Fatalf("the log holds the token:\n%s", e.log.String())
		}
	})
}
