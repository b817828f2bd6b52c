package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

func TestAllInOne(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	apptest.TokenAndVerify(t, a.GatewayAddr)
}

func TestSplitTargetsBehaveLikeAllInOne(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen = apptest.FreeAddr(t), apptest.FreeAddr(t), apptest.FreeAddr(t)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
	for _, target := range []string{"authn", "authz", "signer"} {
		apptest.Start(t, cfg, target)
	}
	gw := apptest.Start(t, cfg, "gateway")
	claims := apptest.TokenAndVerify(t, gw.GatewayAddr)
	if claims["sub"] != "alice" || claims["aud"] != "registry.local" {
		t.Fatalf("claims %v", claims)
	}
	resp, err := http.Get("http://" + gw.GatewayAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d %s", resp.StatusCode, b)
	}
}

func TestUnknownTarget(t *testing.T) {
	t.Parallel()
	cfg, _ := app.DevConfig(t.TempDir())
	err := app.New(cfg, slog.New(slog.DiscardHandler)).Run(context.Background(), "everything")
	if err == nil || err.Error() != fmt.Sprintf("unknown target %q (want all, gateway, authn, authz or signer)", "everything") {
		t.Fatalf("err = %v", err)
	}
}

// gateway.tls serves HTTPS (TLS 1.2 or later) and picks up a renewed certificate.
func TestGatewayTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir)
	first, second := ca.Issue(t, "first"), ca.Issue(t, "second")
	certFile, keyFile := filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw-key.pem")
	copyPair := func(f testpki.Files, at time.Time) {
		for src, dst := range map[string]string{f.Cert: certFile, f.Key: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(dst, at, at); err != nil { // a clear change whatever the file system's clock
				t.Fatal(err)
			}
		}
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	copyPair(first, t0)

	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.TLS.CertFile, cfg.Gateway.TLS.KeyFile = certFile, keyFile
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, cfg, "all")
	if !strings.HasPrefix(a.PublicURL, "https://localhost:") {
		t.Fatalf("public URL %q", a.PublicURL)
	}
	caPEM, _ := os.ReadFile(ca.File)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	served := func() string {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := c.Get(a.PublicURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serving %q", got)
	}
	copyPair(second, t0.Add(time.Hour))
	if got := served(); got != "second" {
		t.Fatalf("after renewal serving %q, want second", got)
	}
	if c, err := tls.Dial("tcp", a.GatewayAddr, &tls.Config{RootCAs: pool, ServerName: "localhost",
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
	// Go's TLS server answers plain HTTP with a 400, never with the content.
	if code, _ := apptest.Get(t, http.DefaultClient, "http://"+a.GatewayAddr+"/healthz", nil); code != http.StatusBadRequest {
		t.Fatalf("plain HTTP on the TLS port: %d", code)
	}
}

// insecure_plaintext_grpc is loud.
func TestInsecurePlaintextGRPCWarns(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.InsecurePlaintextGRPC = true
	cfg.Authz.Listen = apptest.FreeAddr(t)
	var logs testutil.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then return at once
	if err := app.New(cfg, slog.New(slog.NewTextHandler(&logs, nil))).Run(ctx, "authz"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="INSECURE: insecure_plaintext_grpc is set`) {
		t.Fatalf("no loud warning:\n%s", logs.String())
	}
}

// sessions.store, authn.store's old name, still opens the store and says so at start.
func TestOldStoreKeyWarns(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions.Store.Type = "sqlite"
	if err := cfg.Sessions.Store.Config.Encode(map[string]string{"path": filepath.Join(t.TempDir(), "old.db")}); err != nil {
		t.Fatal(err)
	}
	cfg.Authz.Listen = apptest.FreeAddr(t)
	var logs testutil.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then return at once
	if err := app.New(cfg, slog.New(slog.NewTextHandler(&logs, nil))).Run(ctx, "authz"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="config: sessions.store is the old name of authn.store`) {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

// Brute-force protection through the whole process: wrong passwords from one client address
// lock that address out of the account (429 with Retry-After, even with the right password,
// even while it is cached), the same account from another address still logs in, and once
// Retry-After has passed the locked address gets in again. Addresses come from
// X-Forwarded-For, which the gateway believes from its trusted proxy (loopback here).
func TestLockoutEndToEnd(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen, cfg.Gateway.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Gateway.TrustedProxies = []string{"127.0.0.1"}
	cfg.Authn.Lockout.MaxFailuresPerAccountAddress = 3
	cfg.Authn.Lockout.BaseDelay = config.Duration(30 * time.Second)
	// Each wrong password is a bcrypt comparison, slow under -race beside the other tests.
	cfg.Gateway.BackendTimeout = config.Duration(time.Minute)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// Frozen: Retry-After is exact however slowly this machine answers (it moves by clk.Add).
	clk := testutil.NewClock(time.Now())
	a := app.New(cfg, slog.New(slog.DiscardHandler))
	a.SetNow(clk.Now)
	apptest.StartApp(t, a, "all")

	const attacker, elsewhere = "203.0.113.5", "198.51.100.9"
	login := func(pass, from string) (int, string, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
		req.SetBasicAuth("alice", pass)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		strs := map[string]string{}
		for k, v := range body {
			if s, ok := v.(string); ok {
				strs[k] = s
			}
		}
		return resp.StatusCode, resp.Header.Get("Retry-After"), strs
	}
	for i := range 3 {
		if code, _, _ := login("wrong", attacker); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	code, retry, body := login("alice", attacker)
	if code != http.StatusTooManyRequests || retry != "30" || body["error"] != "too_many_attempts" {
		t.Fatalf("locked address with the right password: %d Retry-After %q %v; want 429, 30", code, retry, body)
	}
	if code, _, _ := login("alice", elsewhere); code != http.StatusOK {
		t.Fatalf("the account from another address: %d, want 200", code)
	}
	// The right password is cached now (from elsewhere): the locked address is still refused.
	if code, _, _ := login("alice", attacker); code != http.StatusTooManyRequests {
		t.Fatalf("locked address, cached password: %d, want 429", code)
	}
	clk.Add(30 * time.Second)
	if code, _, body := login("alice", attacker); code != http.StatusOK {
		t.Fatalf("after Retry-After: %d %v, want 200", code, body)
	}
	// The success cleared the count: two more wrong passwords do not lock again.
	for range 2 {
		if code, _, _ := login("wrong", attacker); code != http.StatusUnauthorized {
			t.Fatalf("after the reset: %d, want 401", code)
		}
	}
	if code, _, _ := login("alice", attacker); code != http.StatusOK {
		t.Fatalf("after the reset and two failures: %d, want 200", code)
	}
	_, metrics := apptest.Get(t, http.DefaultClient, "http://"+a.MetricsAddr+"/metrics", nil)
	for _, want := range []string{
		`portcullis_authn_lockouts_total{key="account_address"} 1`,
		`portcullis_authn_lockouts_total{key="address"} 0`,
		`portcullis_authn_lockout_refused_total{key="account_address"} 2`,
		`portcullis_authn_lockout_store_errors_total 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// With sessions off the lockout still keeps its counts in the store (the default SQLite file),
// and with both off no store is opened at all.
func TestLockoutWithoutSessions(t *testing.T) {
	t.Parallel()
	for _, lockoutOn := range []bool{true, false} {
		dir := t.TempDir()
		cfg, err := app.DevConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Listen = "127.0.0.1:0"
		off := false
		cfg.Sessions.Enabled = &off
		cfg.Authn.Lockout.Enabled = &lockoutOn
		cfg.Authn.Lockout.MaxFailuresPerAccountAddress = 1
		// A lock long enough that a slow machine's second request still meets it (the
		// default 1s passed between the two requests under load).
		cfg.Authn.Lockout.BaseDelay, cfg.Authn.Lockout.MaxDelay = config.Duration(time.Hour), config.Duration(time.Hour)
		cfg.Gateway.BackendTimeout = config.Duration(time.Minute) // bcrypt under -race
		a := apptest.Start(t, cfg, "all")
		req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local", nil)
		req.SetBasicAuth("alice", "wrong")
		if code, _ := apptest.Send(t, req); code != http.StatusUnauthorized {
			t.Fatalf("lockout %v: wrong password: %d", lockoutOn, code)
		}
		req.SetBasicAuth("alice", "alice")
		code, _ := apptest.Send(t, req)
		_, statErr := os.Stat(filepath.Join(dir, "sessions.db"))
		switch {
		case lockoutOn && (code != http.StatusTooManyRequests || statErr != nil):
			t.Fatalf("lockout on, sessions off: %d (store: %v), want 429 from the store in the data dir", code, statErr)
		case !lockoutOn && (code != http.StatusOK || statErr == nil):
			t.Fatalf("both off: %d (store file: %v), want 200 and no store", code, statErr)
		}
	}
}

// The check-then-count race seen against `make run`: 200 wrong passwords for alice from one
// address, all at once, through the gateway, real bcrypt and the SQLite store. At most the
// threshold are checked (401); every other one is 429 with Retry-After, none 503.
func TestConcurrentWrongPasswordsEndToEnd(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.TrustedProxies = []string{"127.0.0.1"}
	cfg.Gateway.BackendTimeout = config.Duration(time.Minute)
	cfg.Authn.Bcrypt.MaxQueue = 1000 // the queue is not what is tested here
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, cfg, "all")
	const n = 200
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
			req.SetBasicAuth("alice", fmt.Sprintf("guess%d", i))
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] > cfg.Authn.Lockout.MaxFailuresPerAccountAddress ||
		codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != n {
		t.Fatalf("answers %v: want at most %d × 401, the rest 429", codes, cfg.Authn.Lockout.MaxFailuresPerAccountAddress)
	}
}
