package regclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const testJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm15b3JnL2FwcCJ9.c2lnbmF0dXJl"

// exchangeRealm is a token endpoint that exchanges testJWT as RFC 8693 says, granting pull
// only; answer replaces its answer when set.
type exchangeRealm struct {
	answer func(w http.ResponseWriter)
	mu     sync.Mutex
	seen   []*http.Request
	forms  []url.Values
	srv    *httptest.Server
}

func newExchangeRealm(t *testing.T, answer func(w http.ResponseWriter)) *exchangeRealm {
	t.Helper()
	x := &exchangeRealm{answer: answer}
	x.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		x.mu.Lock()
		x.seen, x.forms = append(x.seen, r), append(x.forms, r.PostForm)
		x.mu.Unlock()
		if x.answer != nil {
			x.answer(w)
			return
		}
		f := r.PostForm
		switch {
		case r.Method != http.MethodPost:
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		case f.Get("grant_type") != GrantTypeTokenExchange || f.Get("subject_token") != testJWT:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "invalid, expired or untrusted subject_token"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "tok-ci", "token": "tok-ci", "issued_token_type": TokenTypeAccessToken,
				"token_type": "Bearer", "expires_in": 300, "issued_at": "2026-01-01T00:00:00Z", "scope": "repository:myorg/app:pull"})
		}
	}))
	t.Cleanup(x.srv.Close)
	return x
}

func (x *exchangeRealm) bearer() Challenge {
	return Challenge{Scheme: "bearer", Params: map[string]string{"realm": x.srv.URL + "/token", "service": "reg.test"}, Registry: "http://reg.test"}
}

func TestFetchTokenExchange(t *testing.T) {
	t.Parallel()
	unsupported := func(w http.ResponseWriter) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "unsupported grant_type"})
	}
	notFound := func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }
	cases := []struct {
		name      string
		answer    func(w http.ResponseWriter)
		req       Request
		wantErr   string // in the error; "" = success
		wantCode  string // the StatusError's code
		wantSent  int    // requests the realm saw
		wantTType string // subject_token_type sent
	}{
		{name: "jwt", req: Request{SubjectToken: testJWT, Scopes: []string{"repository:myorg/app:pull,push"}}, wantSent: 1, wantTType: TokenTypeJWT},
		{name: "id_token", req: Request{SubjectToken: testJWT, SubjectTokenType: TokenTypeIDToken}, wantSent: 1, wantTType: TokenTypeIDToken},
		{name: "refused token", req: Request{SubjectToken: strings.Replace(testJWT, "c2ln", "b3Ro", 1)}, wantErr: "untrusted subject_token", wantCode: "invalid_grant", wantSent: 1},
		// No GET fallback: the realm does not take the grant, and is not sent the token as a password.
		{name: "grant unsupported", answer: unsupported, req: Request{SubjectToken: testJWT}, wantErr: "unsupported", wantCode: "unsupported_grant_type", wantSent: 1},
		{name: "no OAuth2 form", answer: notFound, req: Request{SubjectToken: testJWT}, wantErr: "404", wantSent: 1},
		{name: "with credentials", req: Request{SubjectToken: testJWT, Credentials: Credentials{Username: "alice", Password: "secret"}}, wantErr: "excludes other credentials"},
		{name: "with an identity token", req: Request{SubjectToken: testJWT, Credentials: Credentials{IdentityToken: "rt-alice"}}, wantErr: "excludes other credentials"},
		{name: "not a JWT", req: Request{SubjectToken: "hunter2"}, wantErr: "not a JWT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := newExchangeRealm(t, tc.answer)
			res, err := newClient().FetchToken(context.Background(), x.bearer(), tc.req)
			x.mu.Lock()
			seen, forms := x.seen, x.forms
			x.mu.Unlock()
			if len(seen) != tc.wantSent {
				t.Fatalf("the realm saw %d requests, want %d", len(seen), tc.wantSent)
			}
			for _, r := range seen {
				if r.Method != http.MethodPost || r.Header.Get("Authorization") != "" {
					t.Fatalf("%s with Authorization %q: a token exchange is one POST without credentials", r.Method, r.Header.Get("Authorization"))
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				var se *StatusError
				if tc.wantCode != "" && (!errors.As(err, &se) || se.Code != tc.wantCode) {
					t.Fatalf("err = %#v, want a StatusError with code %s", err, tc.wantCode)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f := forms[0]
			want := url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {testJWT}, "subject_token_type": {tc.wantTType},
				"requested_token_type": {TokenTypeAccessToken}, "service": {"reg.test"}, "client_id": {"portcullis-token"}}
			if len(tc.req.Scopes) > 0 {
				want["scope"] = []string{strings.Join(tc.req.Scopes, " ")}
			}
			if f.Encode() != want.Encode() {
				t.Fatalf("form %v, want %v", f, want)
			}
			if res.Token != "tok-ci" || res.Grant != "token_exchange" || res.Method != http.MethodPost || res.RefreshToken != "" ||
				res.IssuedTokenType != TokenTypeAccessToken || res.GrantedScope != "repository:myorg/app:pull" || res.ExpiresIn != 300 || res.FellBack != nil {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestReadSubjectToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want, wantErr string
	}{
		{name: "file with a newline", in: testJWT + "\n", want: testJWT},
		{name: "white space around", in: "  \r\n" + testJWT + "\t\n", want: testJWT},
		{name: "unsigned token", in: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", want: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
		{name: "empty", in: "\n", wantErr: "empty"},
		{name: "a password", in: "hunter2\n", wantErr: "not a JWT"},
		{name: "two tokens", in: testJWT + "\n" + testJWT, wantErr: "not a JWT"},
		{name: "too long", in: "eyJ." + strings.Repeat("A", MaxSubjectTokenBytes) + ".x", wantErr: "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadSubjectToken(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("err = %v, want one saying %q (and not the input)", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
