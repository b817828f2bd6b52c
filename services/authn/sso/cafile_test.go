package sso_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

// TestCAFile: without an injected client, the IdP is reached over TLS trusting ca_file (and
// the system roots): an IdP with a private CA is found with it and refused without it.
func TestCAFile(t *testing.T) {
	t.Parallel()
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
			"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/keys",
		})
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	files := map[string][]byte{
		"key": key, "secret": []byte("s3cret"),
		"ca.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open := func(ca string) *sso.Provider {
		p, err := sso.New(sso.Config{
			Issuer: srv.URL, CAFile: ca, ClientID: "portcullis", ClientSecretFile: filepath.Join(dir, "secret"),
			Subject: "sub", EncryptionKeyFile: filepath.Join(dir, "key"),
		}, sso.Options{RedirectURL: "https://portcullis.example.com/sso/callback"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := open(filepath.Join(dir, "ca.pem")).AuthCodeURL(context.Background(), sso.NewAuthRequest(), nil); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	if _, err := open("").AuthCodeURL(context.Background(), sso.NewAuthRequest(), nil); !errors.Is(err, sso.ErrUnavailable) {
		t.Fatalf("without ca_file: %v, want ErrUnavailable", err)
	}
}
