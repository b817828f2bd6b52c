package sso

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

// files writes the files a valid config names into a temp dir.
type files struct{ dir, key, secret, ecKey, ca string }

func writeFiles(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	f := files{dir: dir, key: filepath.Join(dir, "key"), secret: filepath.Join(dir, "secret"),
		ecKey: filepath.Join(dir, "ec.pem"), ca: filepath.Join(dir, "ca.pem")}
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	write(t, f.key, key)
	write(t, f.secret, []byte("s3cret\n"))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	write(t, f.ecKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return f
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func validConfig(f files) Config {
	return Config{
		Issuer: "https://idp.example.com", ClientID: "portcullis", ClientSecretFile: f.secret,
		Subject: "preferred_username", EncryptionKeyFile: f.key,
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := writeFiles(t)
	short := filepath.Join(f.dir, "short")
	write(t, short, []byte(strings.Repeat("a", 64))) // hex of 32 bytes: the usual mistake
	empty := filepath.Join(f.dir, "empty")
	write(t, empty, []byte(" \n"))
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakFile := filepath.Join(f.dir, "weak.pem")
	write(t, weakFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(weak)}))
	missing := filepath.Join(f.dir, "missing")

	cases := []struct {
		name   string
		change func(*Config)
		want   []string // substrings, one problem each; none: valid
	}{
		{name: "valid", change: func(*Config) {}},
		{name: "valid with everything", change: func(c *Config) {
			c.Scopes = []string{"openid", "groups", "offline_access"}
			c.Groups = claims.Strings{"groups"}
			c.Labels = map[string]string{"department": "department"}
			c.Claims = map[string]claims.Strings{"email_verified": {"true"}}
			c.SessionMaxTTL = config.Duration(time.Hour)
			c.RevalidateInterval = config.Duration(time.Second)
		}},
		{name: "http on loopback", change: func(c *Config) { c.Issuer = "http://127.0.0.1:4444/" }},
		{name: "http on localhost", change: func(c *Config) { c.Issuer = "http://localhost:4444" }},
		{name: "private_key_jwt", change: func(c *Config) {
			c.ClientSecretFile = ""
			c.PrivateKeyJWT = &PrivateKeyJWT{KeyFile: f.ecKey}
		}},
		{name: "everything missing", change: func(c *Config) { *c = Config{} }, want: []string{
			"issuer: is required", "client_id: is required", "client_secret_file: one of client_secret_file and private_key_jwt.key_file is required",
			"subject: is required", "encryption_key_file: is required",
		}},
		{name: "http elsewhere", change: func(c *Config) { c.Issuer = "http://idp.example.com" }, want: []string{"issuer: \"http://idp.example.com\" must use https"}},
		{name: "issuer with query", change: func(c *Config) { c.Issuer = "https://idp.example.com/?a=b" }, want: []string{"issuer: \"https://idp.example.com/?a=b\" must not have a query"}},
		{name: "relative issuer", change: func(c *Config) { c.Issuer = "idp.example.com" }, want: []string{"issuer: \"idp.example.com\" is not an absolute URL"}},
		{name: "both client credentials", change: func(c *Config) { c.PrivateKeyJWT = &PrivateKeyJWT{KeyFile: f.ecKey} }, want: []string{"not both"}},
		{name: "secret file missing", change: func(c *Config) { c.ClientSecretFile = missing }, want: []string{"client_secret_file: " + missing + ": no such file"}},
		{name: "secret file empty", change: func(c *Config) { c.ClientSecretFile = empty }, want: []string{"client_secret_file: " + empty + " is empty"}},
		{name: "key_file missing", change: func(c *Config) { c.ClientSecretFile = ""; c.PrivateKeyJWT = &PrivateKeyJWT{} }, want: []string{"private_key_jwt.key_file: is required"}},
		{name: "key_file not a key", change: func(c *Config) { c.ClientSecretFile = ""; c.PrivateKeyJWT = &PrivateKeyJWT{KeyFile: f.secret} }, want: []string{"no PEM block"}},
		{name: "key_file weak RSA", change: func(c *Config) { c.ClientSecretFile = ""; c.PrivateKeyJWT = &PrivateKeyJWT{KeyFile: weakFile} }, want: []string{"1024 bits"}},
		{name: "ca_file missing", change: func(c *Config) { c.CAFile = missing }, want: []string{"ca_file: " + missing}},
		{name: "ca_file not PEM", change: func(c *Config) { c.CAFile = f.secret }, want: []string{"ca_file: " + f.secret + " holds no PEM certificates"}},
		{name: "encryption key of 64 bytes", change: func(c *Config) { c.EncryptionKeyFile = short }, want: []string{"encryption_key_file: " + short + " holds 64 bytes, want exactly 32"}},
		{name: "encryption key missing", change: func(c *Config) { c.EncryptionKeyFile = missing }, want: []string{"encryption_key_file: " + missing}},
		{name: "scopes without openid", change: func(c *Config) { c.Scopes = []string{"email", "bad scope"} }, want: []string{"scopes: must contain openid", `scopes: "bad scope" is not a scope`}},
		{name: "mapping", change: func(c *Config) {
			c.Subject = "a..b"
			c.Groups = claims.Strings{""}
			c.Claims = map[string]claims.Strings{"x": {"[bad"}}
		}, want: []string{"subject: claim path \"a..b\" has an empty segment", "groups: \"\": empty claim path", "claims.x: bad pattern"}},
		{name: "durations", change: func(c *Config) {
			c.SessionMaxTTL = config.Duration(-time.Hour)
			c.RevalidateInterval = config.Duration(500 * time.Millisecond)
		}, want: []string{"session_max_ttl: must not be negative", "revalidate_interval: must be at least 1s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig(f)
			tc.change(&c)
			var got []string
			for _, e := range c.Validate() {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
					t.Errorf("no problem says %q: %q", w, got)
				}
			}
			for _, g := range got {
				if strings.Contains(g, "s3cret") {
					t.Errorf("a problem quotes the secret: %q", g)
				}
			}
		})
	}
}

func TestDefaultsAndYAMLKeys(t *testing.T) {
	t.Parallel()
	var c Config
	err := config.Strict([]byte(`
issuer: https://idp.example.com
ca_file: /ca.pem
client_id: portcullis
private_key_jwt: {key_file: /k.pem}
subject: preferred_username
groups: [groups]
labels: {department: department}
claims: {email_verified: "true"}
encryption_key_file: /key
session_max_ttl: 24h
revalidate_interval: 1s
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.CAFile != "/ca.pem" || c.PrivateKeyJWT.KeyFile != "/k.pem" || c.Labels["department"] != "department" ||
		c.Claims["email_verified"][0] != "true" || c.RevalidateInterval.D() != time.Second || c.SessionMaxTTL.D() != 24*time.Hour {
		t.Fatalf("decoded %+v", c)
	}
	c.Defaults()
	if !slices.Equal(c.Scopes, []string{"openid", "email", "profile", "offline_access"}) ||
		c.SessionMaxTTL.D() != 24*time.Hour || c.RevalidateInterval.D() != time.Second {
		t.Fatalf("defaults overrode or missed: %+v", c)
	}
	var d Config
	d.Defaults()
	if d.SessionMaxTTL.D() != 168*time.Hour || d.RevalidateInterval.D() != time.Hour {
		t.Fatalf("defaults %+v", d)
	}
	if err := config.Strict([]byte("client_secret: x\n"), &Config{}); err == nil {
		t.Fatal("an unknown key (a secret inline) was accepted")
	}
}
