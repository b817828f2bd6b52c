// Package grpctls builds the mutual-TLS credentials the split deployment's gRPC uses: every
// service presents a certificate from one CA and accepts only peers that do too. Passwords
// travel from the gateway to authn, so this link must not be plaintext on a network.
//
// A certificate also says who its holder is: its URI SAN spiffe://<trust domain>/<role>.
// Authorize lets a caller reach only the methods its role is meant to call (identity.go).
package grpctls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
)

// DefaultTrustDomain is the trust domain of the peers' URI SANs when none is configured.
const DefaultTrustDomain = "portcullis"

// Config names the PEM files. All three are needed.
type Config struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// ServerName overrides the name clients verify in the servers' certificates.
	ServerName string `yaml:"server_name"`
	// TrustDomain is the host part of the peers' spiffe:// URI SANs (default "portcullis").
	TrustDomain string `yaml:"trust_domain"`
}

// Enabled reports whether any TLS file is given.
func (c Config) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" }

// Domain is the trust domain peers' identities must be in.
func (c Config) Domain() string {
	if c.TrustDomain == "" {
		return DefaultTrustDomain
	}
	return c.TrustDomain
}

// SPIFFE trust domains are lowercase letters, digits, dots, dashes and underscores.
var trustDomainRE = regexp.MustCompile(`^[a-z0-9._-]+$`)

// Validate reports every problem without reading the files.
func (c Config) Validate() []error {
	var errs []error
	if c.TrustDomain != "" && !trustDomainRE.MatchString(c.TrustDomain) {
		errs = append(errs, fmt.Errorf("trust_domain: %q is not a trust domain (lowercase letters, digits, '.', '-', '_')", c.TrustDomain))
	}
	if !c.Enabled() {
		return errs
	}
	for _, f := range []struct{ name, v string }{{"cert_file", c.CertFile}, {"key_file", c.KeyFile}, {"ca_file", c.CAFile}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s: is required when internal TLS is configured", f.name))
		}
	}
	return errs
}

func (c Config) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("internal TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("internal TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, errors.New("internal TLS CA: no certificate in " + c.CAFile)
	}
	return cert, pool, nil
}

// ServerTLS is the TLS configuration of a server that presents the certificate and
// requires and verifies a client certificate. A server that must also answer callers
// without one (the admin REST API's public OpenAPI document) lowers ClientAuth to
// tls.VerifyClientCertIfGiven and checks the identity per request (PeerFromTLS).
func (c Config) ServerTLS() (*tls.Config, error) {
	cert, pool, err := c.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}, nil
}

// Server returns credentials that require and verify a client certificate.
func (c Config) Server() (credentials.TransportCredentials, error) {
	tc, err := c.ServerTLS()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(tc), nil
}

// Client returns credentials that present the certificate, verify the server's, and accept
// it only when it names one of serverRoles (spiffe://<trust domain>/<role>, read as
// PeerFromTLS reads a caller's). Every internal certificate is valid for the same host names
// (localhost, 127.0.0.1, a shared service name), so the host name alone proves only where a
// server is: without the role, an authz that was broken into could present its own genuine
// certificate where authn is expected and receive the passwords meant for authn.
func (c Config) Client(serverRoles ...string) (credentials.TransportCredentials, error) {
	if len(serverRoles) == 0 {
		return nil, errors.New("internal TLS client: no server role to accept")
	}
	cert, pool, err := c.load()
	if err != nil {
		return nil, err
	}
	domain := c.Domain()
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool,
		ServerName: c.ServerName, MinVersion: tls.VersionTLS13,
		// Runs after the chain and host name are verified, so VerifiedChains is set.
		VerifyConnection: func(cs tls.ConnectionState) error {
			p := PeerFromTLS(&cs, domain)
			if !p.Verified || !slices.Contains(serverRoles, p.Role) {
				return &WrongRoleError{Want: serverRoles, Got: p.ID}
			}
			return nil
		}}), nil
}

// WrongRoleError: the server's certificate is valid but names another role (or none).
type WrongRoleError struct {
	Want []string
	Got  string // the certificate's spiffe:// identities, "" for none
}

func (e *WrongRoleError) Error() string {
	got := e.Got
	if got == "" {
		got = "no spiffe:// identity"
	}
	return fmt.Sprintf("internal TLS: the server's certificate names %s, not the role %s", got, strings.Join(e.Want, " or "))
}
