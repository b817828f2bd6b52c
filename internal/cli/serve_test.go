package cli

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
)

func TestVerifyConfigFlag(t *testing.T) {
	t.Parallel()
	var out, errb strings.Builder
	bad := apptest.WriteFile(t, "c.yaml", "gateway: {services: []}\n")
	if err := run(t.Context(), []string{"-verify-config", "-config", bad}, &out, &errb); err == nil {
		t.Fatal("-verify-config accepted a bad file")
	}
	// A token the gateway asks for must not outlive what the signer will sign.
	ttl := apptest.WriteFile(t, "c.yaml", strings.Replace(apptest.ValidDoc, "  services:", "  token_ttl: 2h\n  services:", 1))
	err := run(t.Context(), []string{"-verify-config", "-config", ttl}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "gateway.token_ttl: 2h0m0s exceeds signer.max_ttl 1h0m0s") {
		t.Fatalf("-verify-config with token_ttl > max_ttl: %v", err)
	}
	good := apptest.WriteFile(t, "c.yaml", apptest.ValidDoc)
	if err := run(t.Context(), []string{"-verify-config", "-config", good}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("output %q", out.String())
	}
}

// authn.store is the state store's key; sessions.store, its old name, still works with a
// warning, and setting both is a problem naming both.
func TestAuthnStoreKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newKey := strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  store: {type: sqlite, config: {path: "+dir+"/new.db}}\n", 1)
	oldKey := apptest.ValidDoc + "sessions: {store: {type: sqlite, config: {path: " + dir + "/old.db}}}\n"
	both := newKey + "sessions: {store: {type: sqlite, config: {path: " + dir + "/old.db}}}\n"
	for _, tc := range []struct {
		name, doc, wantErr, wantWarn string
	}{
		{"authn.store", newKey, "", ""},
		{"sessions.store, the old name", oldKey, "", "warning: sessions.store is the old name of authn.store"},
		{"both", both, "sessions.store: is the old name of authn.store, which is set too", ""},
		{"authn.store is checked", strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  store: {type: mongodb}\n", 1), `authn.store: unknown authn store type "mongodb"`, ""},
		{"authn.store config is checked", strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  store: {type: sqlite, config: {}}\n", 1), "authn.store.config.path: is required", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			err := run(t.Context(), []string{"-verify-config", "-config", apptest.WriteFile(t, "c.yaml", tc.doc)}, &out, &errb)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("-verify-config: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("-verify-config: %v", err)
			}
			if !strings.Contains(errb.String(), tc.wantWarn) || (tc.wantWarn == "" && errb.Len() > 0) {
				t.Fatalf("stderr %q, want %q", errb.String(), tc.wantWarn)
			}
		})
	}
}

func TestDevelopmentDefaultsStayOnLoopbackWithoutDev(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-gateway.listen", "127.0.0.1:5001"}, true},
		{[]string{"-gateway.listen", "localhost:5001"}, true},
		{[]string{"-gateway.listen", "0.0.0.0:5001"}, false},
		{[]string{"-gateway.listen", ":5001"}, false},
		{[]string{"-gateway.listen", "192.0.2.1:5001"}, false},
		{[]string{"-gateway.listen", "0.0.0.0:5001", "-dev"}, true},
		// A real config decides for itself.
		{[]string{"-gateway.listen", "0.0.0.0:5001", "-config", apptest.WriteFile(t, "c.yaml", apptest.ValidDoc)}, true},
	} {
		var out, errb strings.Builder
		err := run(t.Context(), append([]string{"-verify-config", "-data-dir", dir}, tc.args...), &out, &errb)
		if (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.args, err)
		}
		if err != nil && !strings.Contains(err.Error(), "-dev") {
			t.Errorf("%v: the refusal does not say how to override it: %v", tc.args, err)
		}
	}
}

func TestInternalTLSFlagsOverrideTheFile(t *testing.T) {
	t.Parallel()
	// One file for every process: the CA and trust domain shared, each its own certificate.
	cfgFile := apptest.WriteFile(t, "c.yaml", apptest.ValidDoc+"internal_tls: {ca_file: /etc/pki/ca.pem, trust_domain: prod.example}\n")
	var out, errb strings.Builder
	if err := run(t.Context(), []string{"-verify-config", "-config", cfgFile}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "internal_tls.cert_file") {
		t.Fatalf("without the flags: %v", err)
	}
	if err := run(t.Context(), []string{"-verify-config", "-config", cfgFile,
		"-internal-tls.cert-file", "/etc/pki/authn.pem", "-internal-tls.key-file", "/etc/pki/authn-key.pem"}, &out, &errb); err != nil {
		t.Fatalf("with the flags: %v", err)
	}
}

// TestVerifyConfigPlainHTTPBundle: -verify-config refuses an unsigned bundle over plain
// http unless that bundle says insecure: true, and a bearer token for a plain-http bundle
// server always.
func TestVerifyConfigPlainHTTPBundle(t *testing.T) {
	t.Parallel()
	token := apptest.WriteFile(t, "token", "s3cret\n")
	cases := []struct {
		bundle string
		want   string // "" when valid
	}{
		{"{url: http://bundles.example/b.tar.gz}", "plain http without verification"},
		{"{url: http://bundles.example/b.tar.gz, insecure: true}", ""},
		{"{url: https://bundles.example/b.tar.gz}", ""},
		{"{url: http://bundles.example/b.tar.gz, insecure: true, bearer_token_file: " + token + "}", "never sent over plain http"},
	}
	for _, tc := range cases {
		doc := apptest.ValidDoc + "authz:\n  opa:\n    bundle: " + tc.bundle + "\n"
		var out, errb strings.Builder
		err := run(t.Context(), []string{"-verify-config", "-config", apptest.WriteFile(t, "c.yaml", doc)}, &out, &errb)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.bundle, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.bundle, err, tc.want)
		}
	}
}

// /metrics moved from the public token port to gateway.metrics_listen.
func TestGatewayMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen, cfg.Gateway.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	apptest.TokenAndVerify(t, a.GatewayAddr)
	code, body := apptest.Get(t, http.DefaultClient, "http://"+a.MetricsAddr+"/metrics", nil)
	if code != 200 || !strings.Contains(body, `portcullis_token_requests_total{outcome="issued"} 1`) ||
		!strings.Contains(body, "portcullis_grpc_server_handled_total") {
		t.Fatalf("metrics address: %d\n%s", code, body)
	}
	if code, _ := apptest.Get(t, http.DefaultClient, "http://"+a.GatewayAddr+"/metrics", nil); code != http.StatusNotFound {
		t.Fatalf("token port /metrics: %d, want 404", code)
	}
	var banner strings.Builder
	printBanner(&banner, cfg, a, true, "", "dir")
	if !strings.Contains(banner.String(), "http://"+a.MetricsAddr+"/metrics") {
		t.Fatalf("banner lacks the metrics address:\n%s", banner.String())
	}
}

// The development defaults' public URL follows the address actually listened on, and
// discovery answers with it whatever Host the client sends.
func TestDevelopmentPublicURL(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	_, port, _ := net.SplitHostPort(a.GatewayAddr)
	if want := "http://localhost:" + port; a.PublicURL != want {
		t.Fatalf("public URL %q, want %q", a.PublicURL, want)
	}
	_, body := apptest.Get(t, http.DefaultClient, "http://"+a.GatewayAddr+"/.well-known/openid-configuration", map[string]string{"Host": "evil.example"})
	if !strings.Contains(body, a.PublicURL+"/.well-known/jwks.json") || strings.Contains(body, "evil.example") {
		t.Fatalf("discovery: %s", body)
	}
	var banner strings.Builder
	printBanner(&banner, cfg, a, true, "", "dir")
	if !strings.Contains(banner.String(), "token endpoint: "+a.PublicURL+"/token") ||
		!strings.Contains(banner.String(), "sign-in page:   "+a.PublicURL+"/ ") {
		t.Fatalf("banner:\n%s", banner.String())
	}
	// The page it names is served (the sign-in form, reached by redirect).
	if code, body := apptest.Get(t, http.DefaultClient, a.PublicURL+"/signin", nil); code != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("sign-in page: %d\n%s", code, body)
	}
}
