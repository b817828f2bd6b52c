package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// cli runs `portcullis ARGS...` and returns its standard output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, &out, &errb)
	return out.String(), err
}

type listedSession struct {
	ID, Subject, Service, ClientID string
}

func listSessionsJSON(t *testing.T, adminArgs []string, extra ...string) []listedSession {
	t.Helper()
	out, err := cli(t, append(append([]string{"sessions", "list", "-o", "json"}, adminArgs...), extra...)...)
	if err != nil {
		t.Fatalf("sessions list: %v", err)
	}
	var l struct {
		Sessions []struct {
			ID       string `json:"id"`
			Subject  string `json:"subject"`
			Service  string `json:"service"`
			ClientID string `json:"client_id"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("sessions list -o json: %v\n%s", err, out)
	}
	var ss []listedSession
	for _, s := range l.Sessions {
		ss = append(ss, listedSession{s.ID, s.Subject, s.Service, s.ClientID})
	}
	return ss
}

// The whole path in one process: docker's offline login through the gateway gets a refresh
// token, the refresh grant answers with a token (echoing the same refresh token), and once
// `portcullis sessions revoke` ended the session on the admin API the refresh is refused.
func TestSessionsLoginRefreshRevoke(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	a := apptest.Start(t, cfg, "all")
	adminArgs := []string{"-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile}

	rt := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
	rtAdmin := apptest.OfflineLogin(t, a.GatewayAddr, "admin", "admin")
	code, ans := apptest.Refresh(t, a.GatewayAddr, rt)
	if code != 200 || ans["access_token"] == nil || ans["refresh_token"] != rt {
		t.Fatalf("refresh grant: %d %v, want 200 with access_token and the same refresh_token", code, ans)
	}

	all := listSessionsJSON(t, adminArgs)
	if len(all) != 2 {
		t.Fatalf("sessions list: %+v, want alice's and admin's", all)
	}
	alice := listSessionsJSON(t, adminArgs, "-user", "alice")
	if len(alice) != 1 || alice[0].Subject != "alice" || alice[0].Service != "registry.local" || alice[0].ClientID != "docker" ||
		!strings.HasPrefix(alice[0].ID, "ses_") || strings.Contains(alice[0].ID, strings.TrimPrefix(rt, "pcr_")) {
		t.Fatalf("sessions list -user alice: %+v", alice)
	}
	table, err := cli(t, append([]string{"sessions", "list"}, adminArgs...)...)
	if err != nil || !strings.HasPrefix(table, "ID ") || !strings.Contains(table, alice[0].ID) ||
		!strings.Contains(table, "LAST USED") || strings.Contains(table, rt) {
		t.Fatalf("sessions list (table): %v\n%s", err, table)
	}

	out, err := cli(t, append([]string{"sessions", "revoke", "-user", "alice"}, adminArgs...)...)
	if err != nil || !strings.Contains(out, "revoked 1 session") {
		t.Fatalf("sessions revoke -user alice: %v\n%s", err, out)
	}
	if code, ans := apptest.Refresh(t, a.GatewayAddr, rt); code != 400 || ans["error"] != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %v, want 400 invalid_grant", code, ans)
	}
	// docker's GET fallback with the revoked token: 401, not a token.
	req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
	req.SetBasicAuth("", rt)
	if code, body := apptest.Send(t, req); code != http.StatusUnauthorized {
		t.Fatalf("GET refresh after revoke: %d %s, want 401", code, body)
	}
	// The other user's session is untouched; revoking it by id ends it too.
	if code, _ := apptest.Refresh(t, a.GatewayAddr, rtAdmin); code != 200 {
		t.Fatalf("admin's refresh after alice's revoke: %d", code)
	}
	left := listSessionsJSON(t, adminArgs)
	if len(left) != 1 || left[0].Subject != "admin" {
		t.Fatalf("sessions after revoking alice's: %+v", left)
	}
	if out, err := cli(t, append([]string{"sessions", "revoke", "-id", left[0].ID}, adminArgs...)...); err != nil {
		t.Fatalf("sessions revoke -id: %v\n%s", err, out)
	}
	if code, _ := apptest.Refresh(t, a.GatewayAddr, rtAdmin); code != 400 {
		t.Fatalf("admin's refresh after revoke -id: %d, want 400", code)
	}
	if _, err := cli(t, append([]string{"sessions", "revoke", "-id", left[0].ID}, adminArgs...)...); status.Code(err) != codes.NotFound {
		t.Fatalf("revoking a revoked session: %v, want NotFound", err)
	}
}

// With sessions off, an offline login still logs in but gets no refresh token.
func TestSessionsDisabled(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	off := false
	cfg.Sessions.Enabled = &off
	apptest.WithAdmin(t, cfg)
	a := apptest.Start(t, cfg, "all")
	req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local&offline_token=true&client_id=docker", nil)
	req.SetBasicAuth("alice", "alice")
	code, body := apptest.Send(t, req)
	if code != 200 || strings.Contains(string(body), "refresh_token") {
		t.Fatalf("offline login with sessions off: %d %s", code, body)
	}
	cc := apptest.DialWith(t, a.AdminAddr, insecure.NewCredentials())
	if got := listSessionsCode(cc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.Unimplemented {
		t.Fatalf("session admin with sessions off: %v, want Unimplemented", got)
	}
	if got := apptest.ListKeys(cc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.OK {
		t.Fatalf("key admin with sessions off: %v", got)
	}
}

func listSessionsCode(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := authnv1.NewSessionAdminServiceClient(cc).ListSessions(ctx, &authnv1.ListSessionsRequest{}, opts...)
	return status.Code(err)
}

// Split, the admin module runs beside authn (sessions) and beside the signer (keys), each
// serving only what its process manages; -admin.listen gives them separate addresses when
// they share a config file.
func TestSplitAuthnRunsTheSessionAdmin(t *testing.T) {
	t.Parallel()
	cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
	authnCfg := *cfg
	authnCfg.Admin.Listen = apptest.FreeAddr(t)
	apptest.Start(t, &authnCfg, "authn")
	apptest.Start(t, cfg, "signer")
	secret := grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))
	atAuthn := apptest.DialWith(t, authnCfg.Admin.Listen, insecure.NewCredentials())
	if got := listSessionsCode(atAuthn, secret); got != codes.OK {
		t.Errorf("session admin beside authn: %v", got)
	}
	if got := listSessionsCode(atAuthn); got != codes.Unauthenticated {
		t.Errorf("session admin without the secret: %v", got)
	}
	if got := apptest.ListKeys(atAuthn, secret); got != codes.Unimplemented {
		t.Errorf("key admin beside authn: %v, want Unimplemented", got)
	}
	if got := apptest.CallAuthenticate(atAuthn, secret); !apptest.Refused(got) {
		t.Errorf("Authenticate on authn's admin address: %v", got)
	}
	atSigner := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	if got := listSessionsCode(atSigner, secret); got != codes.Unimplemented {
		t.Errorf("session admin beside the signer: %v, want Unimplemented", got)
	}
	if got := apptest.ListKeys(atSigner, secret); got != codes.OK {
		t.Errorf("key admin beside the signer: %v", got)
	}
	svc := apptest.DialWith(t, cfg.Authn.Listen, insecure.NewCredentials())
	if got := listSessionsCode(svc, secret); got != codes.Unimplemented {
		t.Errorf("session admin on authn's service address: %v, want Unimplemented", got)
	}
}

// With internal_tls the session admin wants an admin certificate as well as the secret.
func TestSessionAdminWithMutualTLS(t *testing.T) {
	t.Parallel()
	pki := apptest.NewRolePKI(t)
	cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
	apptest.Start(t, pki.As(cfg, "authn"), "authn")
	secret := grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))
	for _, tc := range []struct {
		role string
		want codes.Code
	}{{"admin", codes.OK}, {"gateway", codes.PermissionDenied}, {"authn", codes.PermissionDenied}} {
		if got := listSessionsCode(apptest.DialWith(t, cfg.Admin.Listen, apptest.ClientCreds(t, pki[tc.role])), secret); got != tc.want {
			t.Errorf("%s certificate: ListSessions %v, want %v", tc.role, got, tc.want)
		}
	}
	// The CLI with the admin certificate.
	adm := pki["admin"]
	out, err := cli(t, "sessions", "list", "-addr", cfg.Admin.Listen, "-admin-token-file", cfg.Admin.TokenFile,
		"-tls-cert", adm.CertFile, "-tls-key", adm.KeyFile, "-tls-ca", adm.CAFile, "-tls-server-name", "localhost")
	if err != nil || !strings.HasPrefix(out, "ID ") {
		t.Fatalf("sessions list over mutual TLS: %v\n%s", err, out)
	}
}

func TestSessionsCLIUsage(t *testing.T) {
	t.Parallel()
	tok := apptest.WriteFile(t, "tok", apptest.AdminSecret)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sessions"}, "give a subcommand"},
		{[]string{"sessions", "delete"}, `unknown command "delete" for "portcullis sessions"`},
		{[]string{"sessions", "revoke", "-admin-token-file", tok}, "exactly one of -id or -user"},
		{[]string{"sessions", "revoke", "-id", "x", "-user", "y", "-admin-token-file", tok}, "exactly one of -id or -user"},
		{[]string{"sessions", "list"}, "-admin-token-file is required"},
		{[]string{"sessions", "list", "-admin-token-file", tok, "-o", "yaml"}, "-o must be table or json"},
		{[]string{"sessions", "list", "-admin-token-file", tok, "extra"}, "unexpected arguments"},
		{[]string{"keys", "list", "-admin-token-file", tok, "-o", "yaml"}, "-o must be table or json"},
	} {
		_, err := cli(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("portcullis %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// keys list -o json is the proto's JSON: snake_case names, RFC 3339 times.
func TestKeysListJSON(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	a := apptest.Start(t, cfg, "all")
	out, err := cli(t, "keys", "list", "-o", "json", "-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Versions []struct {
			KeyID     string `json:"key_id"`
			CreatedAt string `json:"created_at"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Versions) == 0 || l.Versions[0].KeyID == "" {
		t.Fatalf("keys list -o json: %v\n%s", err, out)
	}
	if _, err := time.Parse(time.RFC3339, l.Versions[0].CreatedAt); err != nil && l.Versions[0].CreatedAt != "" {
		t.Fatalf("created_at %q: %v", l.Versions[0].CreatedAt, err)
	}
}

func TestSessionsConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dev, err := app.DevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.Sessions.On() || dev.Sessions.IdleTTL.D() != 720*time.Hour || dev.Sessions.MaxTTL.D() != 2160*time.Hour {
		t.Fatalf("defaults: %+v", dev.Sessions)
	}
	spec, err := dev.AuthnStore()
	if err != nil {
		t.Fatal(err)
	}
	var sc struct{ Path string }
	if err := spec.Config.Decode(&sc); err != nil || spec.Type != "sqlite" || sc.Path != filepath.Join(dir, "sessions.db") {
		t.Fatalf("default store: %s %+v %v", spec.Type, sc, err)
	}

	err = apptest.LoadValidate(t, apptest.ValidDoc+`sessions:
  idle_ttl: 100h
  max_ttl: 10h
  store: {type: mongodb}
`)
	for _, want := range []string{"sessions.idle_ttl: 100h0m0s exceeds sessions.max_ttl", "sessions.store", "mongodb"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problem list lacks %q: %v", want, err)
		}
	}
	err = apptest.LoadValidate(t, apptest.ValidDoc+"sessions:\n  idle_ttl: -1h\n  max_ttl: -1h\n  store: {type: sqlite, config: {}}\n")
	for _, want := range []string{"sessions.idle_ttl: must be positive", "sessions.max_ttl: must be positive", "sessions.store.config"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problem list lacks %q: %v", want, err)
		}
	}
	if err := apptest.LoadValidate(t, apptest.ValidDoc+"sessions:\n  idle: 1h\n"); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("unknown key in sessions accepted: %v", err)
	}
	if err := apptest.LoadValidate(t, apptest.ValidDoc+"sessions:\n  store: {type: sqlite, config: {path: /x.db, colour: red}}\n"); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown key in sessions.store.config accepted: %v", err)
	}
	// The store keeps the lockout's counts too: only with both off is it not checked.
	noLockout := strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  lockout: {enabled: false}\n", 1)
	if err := apptest.LoadValidate(t, noLockout+"sessions:\n  enabled: false\n  store: {type: mongodb}\n"); err != nil {
		t.Errorf("disabled sessions are not checked: %v", err)
	}
	if err := apptest.LoadValidate(t, apptest.ValidDoc+"sessions:\n  store: {type: postgres, config: {dsn: \"postgres://u@db/portcullis\"}}\n"); err != nil {
		t.Errorf("a postgres store: %v", err)
	}
}
