package app_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

// approveDevice runs `portcullis login` against authn: the device starts a flow, the signed-in
// person (web session tok) approves it, the device's poll gets a refresh session.
func approveDevice(t *testing.T, cc *grpc.ClientConn, tok string) *authnv1.PollDeviceAuthorizationResponse {
	t.Helper()
	ctx := context.Background()
	dev := authnv1.NewDeviceAuthorizationServiceClient(cc)
	acct := authnv1.NewAccountServiceClient(cc)
	start, err := dev.StartDeviceAuthorization(ctx, &authnv1.StartDeviceAuthorizationRequest{ClientId: "portcullis-cli",
		Service: "registry.local", Scopes: []string{"repository:alice/app:pull"}, RemoteAddr: "127.0.0.1:5555"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.StartDeviceAuthorization(ctx, &authnv1.StartDeviceAuthorizationRequest{ClientId: "portcullis-cli",
		Service: "elsewhere.example"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a flow for a service the gateway does not serve: %v", err)
	}
	if _, err := acct.DecideDevice(ctx, &authnv1.DecideDeviceRequest{WebSessionToken: tok, UserCode: start.GetUserCode(),
		Approve: true, RemoteAddr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	res, err := dev.PollDeviceAuthorization(ctx, &authnv1.PollDeviceAuthorizationRequest{DeviceCode: start.GetDeviceCode(), ClientId: "portcullis-cli"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func dialAuthn(t *testing.T, cfg *app.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(cfg.Authn.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestAccountWithPassword: authn serves AccountService and DeviceAuthorizationService when
// sessions are on; a password sign-in approves a device, whose session then refreshes.
func TestAccountWithPassword(t *testing.T) {
	t.Parallel()
	cfg := apptest.SplitConfig(t)
	apptest.Start(t, cfg, "authn")
	cc := dialAuthn(t, cfg)
	ctx := context.Background()
	acct := authnv1.NewAccountServiceClient(cc)
	in, err := acct.PasswordSignIn(ctx, &authnv1.PasswordSignInRequest{Username: "alice", Password: "alice", RemoteAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := acct.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: in.GetWebSessionToken()})
	if err != nil || got.GetIdentity().GetSubject() != "alice" || got.GetPersonalAccessTokens() {
		t.Fatalf("account %v: %v", got, err)
	}
	res := approveDevice(t, cc, in.GetWebSessionToken())
	if res.GetIdentity().GetSubject() != "alice" || !strings.HasPrefix(res.GetRefreshToken(), "pcr_") {
		t.Fatalf("poll %v", res)
	}
	if _, err := authnv1.NewAuthnServiceClient(cc).Refresh(ctx, &authnv1.RefreshRequest{RefreshToken: res.GetRefreshToken(),
		Service: "registry.local", ClientId: "portcullis-cli"}); err != nil {
		t.Fatalf("refreshing the device's session: %v", err)
	}
	ss, err := acct.ListMySessions(ctx, &authnv1.ListMySessionsRequest{WebSessionToken: in.GetWebSessionToken()})
	if err != nil || len(ss.GetSessions()) != 1 || ss.GetSessions()[0].GetClientId() != "portcullis-cli" {
		t.Fatalf("alice's sessions %v: %v", ss, err)
	}
	_, err = acct.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: "http://localhost/signin/callback"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("BeginSignIn without sso: %v", err)
	}
}

// TestAccountOffWithoutSessions: no sessions, no device flow and no account pages.
func TestAccountOffWithoutSessions(t *testing.T) {
	t.Parallel()
	cfg := apptest.SplitConfig(t)
	off := false
	cfg.Sessions.Enabled = &off
	a := apptest.Start(t, cfg, "authn")
	for _, svc := range a.Served()["services"] {
		if strings.HasSuffix(svc, "AccountService") || strings.HasSuffix(svc, "DeviceAuthorizationService") {
			t.Fatalf("serves %s without sessions", svc)
		}
	}
}

// TestAccountWithSSO: with sso.issuer (a real Hydra) the sso backend joins the chain by
// itself; a person signs in at the IdP, approves a device, and the device's session (backend
// sso, at most sso.session_max_ttl) refreshes through the directory.
func TestAccountWithSSO(t *testing.T) {
	t.Parallel()
	h := hydratest.Start(t)
	h.AddUser(hydratest.User{Subject: "idp-dana", Claims: map[string]any{"preferred_username": "dana", "groups": []string{"developers"}}})
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.RawQuery) }))
	t.Cleanup(gw.Close)
	callback := gw.URL + app.CallbackPath
	client := h.CreateClient(t, hydratest.ClientConfig{RedirectURIs: []string{callback}})

	cfg := apptest.SplitConfig(t)
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	cfg.Gateway.PublicURL = gw.URL
	cfg.SSO.Config = sso.Config{Issuer: h.Issuer, ClientID: client.ID,
		ClientSecretFile:  apptest.WriteFile(t, "secret", client.Secret),
		EncryptionKeyFile: apptest.WriteFile(t, "key", string(key)),
		Subject:           "preferred_username", Groups: []string{"groups"},
		Scopes:        []string{"openid", "offline_access", "profile"},
		SessionMaxTTL: config.Duration(2 * time.Hour)}
	cfg.SSO.PAT.Enabled = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	apptest.Start(t, cfg, "authn")
	cc := dialAuthn(t, cfg)
	ctx := context.Background()
	acct := authnv1.NewAccountServiceClient(cc)

	begin, err := acct.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: callback, ReturnTo: "/account"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(begin.GetAuthorizationUrl())
	if u.Query().Get("redirect_uri") != callback {
		t.Fatalf("redirect_uri %q, want gateway.public_url + %s", u.Query().Get("redirect_uri"), app.CallbackPath)
	}
	jar, _ := cookiejar.New(nil)
	res, err := (&http.Client{Jar: jar, Timeout: time.Minute}).Get(begin.GetAuthorizationUrl())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	q, _ := url.ParseQuery(string(body))
	done, err := acct.CompleteSignIn(ctx, &authnv1.CompleteSignInRequest{Code: q.Get("code"), State: q.Get("state"),
		Flow: begin.GetFlow(), RedirectUri: callback, RemoteAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatalf("callback %s: %v", body, err)
	}
	got, err := acct.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: done.GetWebSessionToken()})
	if err != nil || got.GetIdentity().GetSubject() != "dana" || got.GetIdentity().GetBackend() != "sso" ||
		!slices.Contains(got.GetIdentity().GetGroups(), "developers") || !got.GetPersonalAccessTokens() {
		t.Fatalf("account %v: %v", got, err)
	}

	poll := approveDevice(t, cc, done.GetWebSessionToken())
	if poll.GetIdentity().GetSubject() != "dana" || poll.GetIdentity().GetBackend() != "sso" {
		t.Fatalf("poll %v", poll.GetIdentity())
	}
	ss, err := acct.ListMySessions(ctx, &authnv1.ListMySessionsRequest{WebSessionToken: done.GetWebSessionToken()})
	if err != nil || len(ss.GetSessions()) != 1 {
		t.Fatalf("dana's sessions %v: %v", ss, err)
	}
	if left := time.Until(ss.GetSessions()[0].GetExpiresAt().AsTime()); left > 2*time.Hour || left < time.Hour {
		t.Fatalf("the device's session ends in %s, want sso.session_max_ttl (2h)", left)
	}
	if _, err := authnv1.NewAuthnServiceClient(cc).Refresh(ctx, &authnv1.RefreshRequest{RefreshToken: poll.GetRefreshToken(),
		Service: "registry.local", ClientId: "portcullis-cli"}); err != nil {
		t.Fatalf("refreshing through the sso backend: %v", err)
	}
	// A personal access token's owner is re-read through the chain, which reaches the directory.
	pat, err := acct.CreateMyPersonalAccessToken(ctx, &authnv1.CreateMyPersonalAccessTokenRequest{WebSessionToken: done.GetWebSessionToken(),
		Name: "ci", ExpiresIn: durationpb.New(time.Hour)})
	if err != nil || pat.GetPersonalAccessToken().GetOwner() != "dana" {
		t.Fatalf("token %v: %v", pat, err)
	}
}

// TestSSOBackendConfig: sso.issuer needs sessions; the sso backend listed needs sso.issuer,
// and the name the added one takes is not another backend's.
func TestSSOBackendConfig(t *testing.T) {
	t.Parallel()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	ssoDoc := "sso:\n  issuer: https://idp.example\n  client_id: portcullis\n  subject: sub\n" +
		"  client_secret_file: " + apptest.WriteFile(t, "secret", "s3cret") + "\n" +
		"  encryption_key_file: " + apptest.WriteFile(t, "key", string(key)) + "\n"
	withBackend := func(b string) string {
		return strings.Replace(apptest.ValidDoc, "    - name: s\n", b+"    - name: s\n", 1)
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"sso", apptest.ValidDoc + ssoDoc, nil},
		{"sso with the backend listed", withBackend("    - {name: idp, type: sso}\n") + ssoDoc, nil},
		{"sso without sessions", apptest.ValidDoc + ssoDoc + "sessions: {enabled: false}\n",
			[]string{"sso.issuer: signing in with an identity provider hands out sessions"}},
		{"the sso backend without sso", withBackend("    - {name: idp, type: sso}\n"),
			[]string{"authn.backends[0].type: the sso backend needs sso.issuer"}},
		{"the name the added backend takes", withBackend("    - {name: sso, type: static, config: {users: []}}\n") + ssoDoc,
			[]string{`authn.backends[0].name: "sso" is the name of the backend sso.issuer adds`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := apptest.LoadValidate(t, tc.doc)
			if len(tc.want) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want %q", err, w)
				}
			}
		})
	}
}
