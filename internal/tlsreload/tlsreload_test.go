package tlsreload_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	"github.com/portcullis-dev/portcullis/internal/tlsreload"
)

// install copies a pair into place and gives both files the modification time at, so the
// change is seen however coarse the file system's clock is.
func install(t *testing.T, f testpki.Files, certFile, keyFile string, at time.Time) {
	t.Helper()
	for src, dst := range map[string]string{f.Cert: certFile, f.Key: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dst, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

// served dials addr and returns the certificate the server presented.
func served(t *testing.T, addr string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestRotatedCertificateIsServed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir)
	a, b := ca.Issue(t, "a"), ca.Issue(t, "b")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	install(t, a, certFile, keyFile, t0)

	r, err := tlsreload.New(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	caPEM, _ := os.ReadFile(ca.File)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	addr := lis.Addr().String()

	if got := served(t, addr, pool); got.Subject.CommonName != "a" {
		t.Fatalf("serving %q, want a", got.Subject.CommonName)
	}
	install(t, b, certFile, keyFile, t0.Add(time.Hour))
	if got := served(t, addr, pool); got.Subject.CommonName != "b" {
		t.Fatalf("after rotation serving %q, want b", got.Subject.CommonName)
	}

	// A half-written renewal (a's certificate with b's key) keeps the last good pair.
	install(t, testpki.Files{Cert: a.Cert, Key: b.Key}, certFile, keyFile, t0.Add(2*time.Hour))
	if got := served(t, addr, pool); got.Subject.CommonName != "b" {
		t.Fatalf("after a bad pair serving %q, want b", got.Subject.CommonName)
	}
	if err := os.WriteFile(certFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(t, addr, pool); got.Subject.CommonName != "b" {
		t.Fatalf("after garbage serving %q, want b", got.Subject.CommonName)
	}
	// Once the pair is whole again it is picked up.
	install(t, a, certFile, keyFile, t0.Add(3*time.Hour))
	if got := served(t, addr, pool); got.Subject.CommonName != "a" {
		t.Fatalf("after repair serving %q, want a", got.Subject.CommonName)
	}

	// TLS 1.1 and older are refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestUnusablePairIsAnErrorAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir)
	a, b := ca.Issue(t, "a"), ca.Issue(t, "b")
	for name, f := range map[string]testpki.Files{
		"missing":  {Cert: filepath.Join(dir, "nope.pem"), Key: a.Key},
		"mismatch": {Cert: a.Cert, Key: b.Key},
		"not PEM":  {Cert: ca.File + ".x", Key: a.Key},
	} {
		if name == "not PEM" {
			_ = os.WriteFile(f.Cert, []byte("x"), 0o600)
		}
		if _, err := tlsreload.New(f.Cert, f.Key, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
