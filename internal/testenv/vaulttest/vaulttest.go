// Package vaulttest starts a real Vault server for integration tests: file storage in a temp
// dir (so it can be stopped and restarted without losing keys), initialised with one unseal
// key, transit enabled at transit/ and KV version 2 at secret/. It never fakes Vault: a test that needs Vault and finds no vault
// binary fails.
package vaulttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// Server is a running (or stopped) Vault.
type Server struct {
	Addr      string // http://127.0.0.1:PORT, or https:// with StartTLS
	CAFile    string // with StartTLS: the CA that signed Vault's certificate
	RootToken string
	unsealKey string
	bin, dir  string
	listen    string
	log       *os.File

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary finds vault: $VAULT_BIN, the project's .cache/bin, then PATH.
func Binary(t testutil.T) string {
	t.Helper()
	if b := os.Getenv("VAULT_BIN"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..") // internal/testenv/vaulttest
	if b := filepath.Join(root, ".cache", "bin", "vault"); isExec(b) {
		return b
	}
	if b, err := exec.LookPath("vault"); err == nil {
		return b
	}
	t.Fatal("vault binary not found (run scripts/install-tools.sh vault): the Vault suites need a real Vault")
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

// Start runs a Vault server for the test, initialised, unsealed, transit mounted at
// "transit" and KV version 2 at "secret" (where x5c certificates live).
func Start(t testutil.T) *Server { return start(t, false) }

// StartTLS is Start with an https listener whose certificate a fresh CA (CAFile) signed.
func StartTLS(t testutil.T) *Server { return start(t, true) }

func start(t testutil.T, useTLS bool) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.listen = l.Addr().String()
	l.Close()
	s.Addr = "http://" + s.listen
	tlsCfg := "tls_disable = true"
	if useTLS {
		s.Addr = "https://" + s.listen
		f := testpki.Write(t, s.dir)
		s.CAFile = f.CA
		tlsCfg = fmt.Sprintf("tls_cert_file = %q\n  tls_key_file = %q", f.Cert, f.Key)
	}
	cfg := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address = %q
  %s
}
disable_mlock = true
ui = false
`, filepath.Join(s.dir, "data"), s.listen, tlsCfg)
	if err := os.WriteFile(filepath.Join(s.dir, "vault.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.log, err = os.Create(filepath.Join(s.dir, "vault.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "vault.log"))
			lines := strings.Split(string(b), "\n")
			t.Logf("vault log tail:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	s.start(t)
	c := s.client(t, "")
	init, err := c.Sys().InitWithContext(context.Background(), &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vault init: %v", err)
	}
	s.RootToken, s.unsealKey = init.RootToken, init.Keys[0]
	s.Unseal(t)
	c = s.Client(t)
	if err := c.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enable transit: %v", err)
	}
	if err := c.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("enable kv-v2: %v", err)
	}
	// A new KV v2 mount refuses requests until it has set itself up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Logical().Read("secret/config")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kv-v2 at secret/ not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *Server) start(t testutil.T) {
	t.Helper()
	s.mu.Lock()
	s.cmd = exec.Command(s.bin, "server", "-config="+filepath.Join(s.dir, "vault.hcl"))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=warn")
	err := s.cmd.Start()
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("start vault: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.listen, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault did not listen on %s within 30s", s.listen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) client(t testutil.T, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	if s.CAFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CAFile}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// Client is a root client.
func (s *Server) Client(t testutil.T) *api.Client { return s.client(t, s.RootToken) }

// Unseal unseals the server (after Start, Restart or Seal).
func (s *Server) Unseal(t testutil.T) {
	t.Helper()
	st, err := s.client(t, "").Sys().Unseal(s.unsealKey)
	if err != nil || st.Sealed {
		t.Fatalf("unseal: %v", err)
	}
	// Active only once the core has finished unsealing.
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := s.client(t, "").Sys().Health()
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault not active after unseal: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Seal seals the server: every transit call fails until Unseal.
func (s *Server) Seal(t testutil.T) {
	t.Helper()
	if err := s.Client(t).Sys().Seal(); err != nil {
		t.Fatalf("seal: %v", err)
	}
}

// Stop terminates the server (keys survive on disk).
func (s *Server) Stop(t testutil.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused Vault cannot act on SIGTERM
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP): connections open but nothing answers, like a hung Vault.
func (s *Server) Pause(t testutil.T) { s.signal(t, syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume(t testutil.T) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testutil.T, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		t.Fatal("vault is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal vault: %v", err)
	}
	if sig != syscall.SIGSTOP {
		return
	}
	// kill(2) returns before the process has stopped: on a loaded machine a running Vault
	// thread could still answer a request. Wait until the kernel reports it stopped.
	stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatalf("vault state: %v", err)
		}
		// The state follows the parenthesised command name: "pid (comm) T ...".
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
	}
	t.Fatal("vault did not stop within 10s of SIGSTOP")
}

// Restart starts a stopped server on the same address and unseals it.
func (s *Server) Restart(t testutil.T) {
	t.Helper()
	s.start(t)
	s.Unseal(t)
}

// CreateKey creates a transit key of the given type.
func (s *Server) CreateKey(t testutil.T, name, typ string) {
	t.Helper()
	if _, err := s.Client(t).Logical().Write("transit/keys/"+name, map[string]any{"type": typ}); err != nil {
		t.Fatalf("create transit key %s: %v", name, err)
	}
}

// Rotate rotates a transit key.
func (s *Server) Rotate(t testutil.T, name string) {
	t.Helper()
	if _, err := s.Client(t).Logical().Write("transit/keys/"+name+"/rotate", nil); err != nil {
		t.Fatalf("rotate %s: %v", name, err)
	}
}

// TokenWithPolicy writes policy under name and returns a token holding only it.
func (s *Server) TokenWithPolicy(t testutil.T, name, policy string) string {
	t.Helper()
	c := s.Client(t)
	if err := c.Sys().PutPolicy(name, policy); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	sec, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return sec.Auth.ClientToken
}
