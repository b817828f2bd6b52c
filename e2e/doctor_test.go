//go:build e2e

package e2e

// `portcullis doctor` against deliberately broken setups of the real registries
// (distribution 3.1.2 and Debian's 2.8) in front of a real Portcullis: each break is one a
// user meets, and the doctor must name it and exit 1; the healthy setup must pass with 0.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

type doctorRun struct {
	code int
	out  string
}

func runDoctor(t *testing.T, stdin string, args ...string) doctorRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, portcullisBin(t), append([]string{"doctor"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := doctorRun{out: out.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("portcullis doctor: %v", err)
	}
	t.Logf("$ portcullis doctor %s  [exit %d]\n%s", strings.Join(args, " "), r.code, indent(r.out))
	return r
}

// expect checks the exit code and that each pattern matches a PROBLEM line (or, for a
// healthy run, an ok line).
func (r doctorRun) expect(t *testing.T, code int, problems ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d", r.code, code)
	}
	var lines []string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(l, "  PROBLEM") {
			lines = append(lines, l)
		}
	}
	if code == 0 && len(lines) > 0 {
		t.Errorf("healthy setup reported problems:\n%s", strings.Join(lines, "\n"))
	}
	for _, p := range problems {
		re := regexp.MustCompile(p)
		found := false
		for _, l := range lines {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("no PROBLEM line matches %q", p)
		}
	}
}

// brokenRegistry starts a registry whose auth section is trust/auth-token.yml passed
// through edit, and waits for its 401.
func brokenRegistry(t *testing.T, kind registryKind, trust string, edit func(auth string) string) (*registry, string) {
	t.Helper()
	auth, err := os.ReadFile(filepath.Join(trust, "auth-token.yml"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n  secret: doctor-%d\n%s",
		t.TempDir(), port, port, edit(string(auth)))
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &registry{Host: fmt.Sprintf("localhost:%d", port), URL: fmt.Sprintf("http://localhost:%d", port)}
	r.proc = startProc(t, kind.name, peer(t, kind.bin), "serve", path)
	waitUntil(t, kind.name+" answering 401", []*proc{r.proc}, httpStatus(r.URL+"/v2/", http.StatusUnauthorized))
	return r, path
}

func keep(auth string) string { return auth }

func TestDoctor(t *testing.T) {
	pc := startAllInOneConfig(t, portcullisConfig{})
	trust := pc.registryTrust(t)
	alice := []string{"-u", "alice", "--password-stdin"}

	t.Run("healthy 3.x", func(t *testing.T) {
		reg, cfg := brokenRegistry(t, registry3, trust, keep)
		args := append([]string{"-registry", reg.URL, "-registry-config", cfg, "-scope", "repository:alice/app:pull,push"}, alice...)
		r := runDoctor(t, "alice\n", args...)
		r.expect(t, 0)
		for _, want := range []string{"the registry accepts the token", "a 3.x registry with this config trusts the key", "repository:alice/app:pull,push is granted", "lets the token read alice/app"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	t.Run("catalog not granted", func(t *testing.T) {
		reg, _ := brokenRegistry(t, registry3, trust, keep)
		r := runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-scope", "registry:catalog:*"}, alice...)...)
		r.expect(t, 1, `asked for registry:catalog:\*, the token grants nothing`)
	})

	t.Run("wrong password", func(t *testing.T) {
		reg, _ := brokenRegistry(t, registry3, trust, keep)
		runDoctor(t, "wrong\n", append([]string{"-registry", reg.URL}, alice...)...).expect(t, 1, `the token endpoint refuses alice`)
	})

	t.Run("wrong bundle", func(t *testing.T) {
		// The registry trusts another Portcullis's key: the classic "token signed by
		// untrusted key".
		other := startAllInOneDev(t).registryTrust(t)
		wrong := t.TempDir()
		for _, f := range []string{"rootcertbundle.pem", "jwks.json"} {
			b, err := os.ReadFile(filepath.Join(other, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(wrong, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		reg, cfg := brokenRegistry(t, registry3, trust, func(a string) string { return strings.ReplaceAll(a, trust, wrong) })
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-registry-config", cfg}, alice...)...).
			expect(t, 1, `the registry refuses the token: GET /v2/ with it answered 401 \(invalid_token\)`,
				`if this registry is 3.x: kid \S+ is not among the keys the registry trusts`)
		// Without the config the doctor still sees the refusal.
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL}, alice...)...).expect(t, 1, `the registry refuses the token`)
	})

	t.Run("thumbprint kid on 2.8", func(t *testing.T) {
		// 2.8 ignores the jwks file and derives libtrust key IDs from the bundle.
		reg, cfg := brokenRegistry(t, registry28, trust, keep)
		r := runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-registry-config", cfg}, alice...)...)
		r.expect(t, 1, `the registry refuses the token`, `if this registry is 2\.x: kid \S+ is the RFC 7638 thumbprint of rootcertbundle certificate 1 .* distribution 2\.x derives libtrust key IDs`)
		if !strings.Contains(r.out, "kid_mode: libtrust") {
			t.Error("the fix does not say kid_mode: libtrust")
		}
	})

	t.Run("libtrust kid on 2.8", func(t *testing.T) {
		lib := startAllInOneConfig(t, portcullisConfig{KIDMode: "libtrust"})
		reg, cfg := brokenRegistry(t, registry28, lib.registryTrust(t), keep)
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-registry-config", cfg}, alice...)...).expect(t, 0)
	})

	t.Run("wrong issuer", func(t *testing.T) {
		reg, cfg := brokenRegistry(t, registry3, trust, func(a string) string {
			return strings.Replace(a, "issuer: "+issuer, "issuer: auth.example.com", 1)
		})
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-registry-config", cfg}, alice...)...).
			expect(t, 1, `the token's issuer is "portcullis", but the registry trusts only issuer "auth.example.com"`, `the registry refuses the token`)
	})

	t.Run("wrong service", func(t *testing.T) {
		reg, _ := brokenRegistry(t, registry3, trust, func(a string) string {
			return strings.Replace(a, "service: "+service, "service: other.example.com", 1)
		})
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL}, alice...)...).
			expect(t, 1, `the token endpoint does not serve the registry's service "other.example.com"`)
	})

	t.Run("config not the one the registry runs", func(t *testing.T) {
		reg, _ := brokenRegistry(t, registry3, trust, keep)
		_, other := brokenRegistry(t, registry3, trust, func(a string) string {
			return strings.Replace(a, "service: "+service, "service: other.example.com", 1)
		})
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL, "-registry-config", other}, alice...)...).
			expect(t, 1, `the registry config says service "other.example.com", but the registry answers with service`)
	})

	t.Run("IP-literal realm", func(t *testing.T) {
		ipRealm := strings.Replace(pc.Realm, "localhost", "127.0.0.1", 1)
		reg, _ := brokenRegistry(t, registry3, trust, func(a string) string { return strings.Replace(a, "realm: "+pc.Realm, "realm: "+ipRealm, 1) })
		runDoctor(t, "alice\n", append([]string{"-registry", reg.URL}, alice...)...).
			expect(t, 1, `the realm http://127\.0\.0\.1:\d+/token is on the IP address 127\.0\.0\.1 while clients reach the registry as localhost:\d+: crane and oras refuse`)
		// What the doctor says is what crane does.
		c := newClients(t)
		c.failsWith(t, regexp.MustCompile(`realm host "127\.0\.0\.1" is a private or link-local address`),
			"crane", "ls", "--insecure", reg.Host+"/alice/app")
	})

	t.Run("expired token", func(t *testing.T) {
		reg, cfg := brokenRegistry(t, registry3, trust, keep)
		tok := signExpired(t, filepath.Join(pc.Dir, "signing-key.pem"))
		r := runDoctor(t, tok, "-registry", reg.URL, "-registry-config", cfg, "-token", "-")
		r.expect(t, 1, `the token expired at \S+, 1h0m\d+s ago`, `the registry refuses the token`)
		if !strings.Contains(r.out, "a 3.x registry with this config would trust the key") {
			t.Error("the doctor did not clear the key, so the refusal is left unexplained by anything but the expiry")
		}
	})

	t.Run("EC key with a zero-led coordinate on 3.x", func(t *testing.T) {
		// distribution 3.x drops the zero byte before hashing its kid for a rootcertbundle
		// key; only the jwks file names the key as everyone else does.
		keyFile := filepath.Join(t.TempDir(), "quirky.pem")
		writeZeroLedKey(t, keyFile)
		q := startAllInOneConfig(t, portcullisConfig{Key: keySpec(t, &local.Config{Path: keyFile, KeyIDMode: keyid.ModeThumbprint})})
		qTrust := filepath.Join(t.TempDir(), "trust")
		out, err := exec.Command(portcullisBin(t), "registry-config", "-config", q.Config, "-service", service, "-realm", q.Realm, "-out", qTrust).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "warning: keep the jwks line: a distribution 3.x registry given only the rootcertbundle would refuse the tokens") {
			t.Errorf("registry-config did not warn about the bundle-only 3.x kid (err %v):\n%s", err, out)
		}
		bundleOnly, cfg := brokenRegistry(t, registry3, qTrust, func(a string) string {
			return regexp.MustCompile(`(?m)^\s*jwks:.*$`).ReplaceAllString(a, "")
		})
		runDoctor(t, "alice\n", append([]string{"-registry", bundleOnly.URL, "-registry-config", cfg}, alice...)...).
			expect(t, 1, `the registry refuses the token`, `if this registry is 3\.x: kid \S+ is the RFC 7638 thumbprint of rootcertbundle certificate 1 .* starting with a zero byte`)
		withJWKS, cfg := brokenRegistry(t, registry3, qTrust, keep)
		runDoctor(t, "alice\n", append([]string{"-registry", withJWKS.URL, "-registry-config", cfg}, alice...)...).expect(t, 0)
	})

	t.Run("bad flags", func(t *testing.T) {
		runDoctor(t, "", "-registry", "ftp://x").expect(t, 2)
		runDoctor(t, "", "-registry", pc.URL, "-scope", "repository:ALICE:pull").expect(t, 2)
	})
}

// writeZeroLedKey writes a P-256 key whose X or Y coordinate starts with a zero byte (about
// one key in 64).
func writeZeroLedKey(t *testing.T, path string) {
	t.Helper()
	for range 100000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			continue
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no zero-led key found")
}

// signExpired signs, with Portcullis's own key file, a token for alice that expired an hour
// ago: what a client holding on to an old token sends.
func signExpired(t *testing.T, keyFile string) string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", keyFile)
	}
	var key crypto.Signer
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		var k any
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		key, _ = k.(crypto.Signer)
	}
	if err != nil || key == nil {
		t.Fatalf("%s: %v", keyFile, err)
	}
	kid, err := keyid.Thumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: issuer, Subject: "alice", Audience: jwt.Audience{service},
		IssuedAt: jwt.NewNumericDate(now.Add(-65 * time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-65 * time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(-time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
