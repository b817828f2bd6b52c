// Package tlsreload serves a TLS certificate from PEM files and picks up a renewed one when
// the files change, so rotating the gateway's certificate needs no restart.
package tlsreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader holds the last good certificate read from its files.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.Mutex
	cert *tls.Certificate
	// seen is what the files looked like when last read, good or bad: a bad pair is not
	// re-read (and re-logged) on every handshake, only once one of the files changes again.
	seen [2]stamp
}

// stamp is how a changed file is noticed without reading it: a stat per handshake is cheap.
type stamp struct {
	mod  time.Time
	size int64
}

// New reads the pair once; a pair that cannot be used now is an error.
func New(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	r.cert, r.seen = &cert, st
	return r, nil
}

func (r *Reloader) stat() ([2]stamp, error) {
	var st [2]stamp
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, err
		}
		st[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return st, nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair, re-read first when a file
// changed since it was last read. While the files are unreadable or do not form a pair (a
// renewal half written), the last good certificate is served.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.stat()
	if err != nil || st == r.seen {
		return r.cert, nil
	}
	r.seen = st
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate changed but cannot be used; serving the previous one", "cert_file", r.certFile, "error", err)
		return r.cert, nil
	}
	r.cert = &cert
	r.log.Info("TLS certificate reloaded", "cert_file", r.certFile, "not_after", cert.Leaf.NotAfter)
	return r.cert, nil
}

// TLSConfig is a server configuration serving the reloaded certificate with TLS 1.2 or later.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
}
