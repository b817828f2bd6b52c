package cli

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/regtrust"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// runRegistryConfig writes what a distribution registry needs to trust Portcullis's tokens:
// the auth.token YAML, a rootcertbundle PEM (a self-signed certificate for the signing key,
// read by 2.8 and 3.x) and a jwks.json (3.x). In x5c mode it writes the root certificate as
// the bundle and nothing else: no jwks, so no signing key is pinned.
func runRegistryConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis registry-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "Portcullis config file (default: the development defaults)")
	expandEnv := fs.Bool("config.expand-env", false, "expand ${VAR} references in the config file")
	dataDir := fs.String("data-dir", ".portcullis", "data directory of the development defaults")
	service := fs.String("service", "", "registry service name (default: the first of gateway.services)")
	realm := fs.String("realm", "http://localhost:5001/token", "token endpoint URL the registry sends clients to")
	out := fs.String("out", "", "directory to write auth-token.yml, rootcertbundle.pem and (not in x5c mode) jwks.json into (required)")
	version := fs.String("registry-version", "3", "the distribution major the files are for: 3 (3.x, reads jwks and the bundle) or 2 (2.x, e.g. 2.8: "+
		"the bundle only, by libtrust key ID); with 2, a key 2.x would refuse is an error naming the fix")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("registry-config: -out is required")
	}
	major, err := registryMajor(*version)
	if err != nil {
		return err
	}
	cfg, _, err := app.LoadConfig(*cfgPath, *expandEnv, *dataDir)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *service == "" {
		*service = cfg.Gateway.Services[0]
	}
	km, err := app.OpenKeyManager(ctx, cfg, slog.New(slog.DiscardHandler), time.Now, nil, nil)
	if err != nil {
		return err
	}
	defer km.Close(ctx)
	return writeRegistryTrust(ctx, km, *out, *realm, *service, cfg.Signer.Issuer, major, stdout, stderr)
}

// registryMajor reads -registry-version: 2, 2.x, 2.8… or 3, 3.x, 3.1…
func registryMajor(v string) (regtrust.Major, error) {
	switch {
	case v == "2" || strings.HasPrefix(v, "2."):
		return regtrust.V2, nil
	case v == "3" || strings.HasPrefix(v, "3."):
		return regtrust.V3, nil
	}
	return "", fmt.Errorf("registry-config: -registry-version %q: give 2 or 3 (distribution's major version)", v)
}

// writeRegistryTrust writes the trust files for km into out and checks what it wrote for
// a registry of the given major.
func writeRegistryTrust(ctx context.Context, km signer.KeyManager, out, realm, service, issuer string, major regtrust.Major, stdout, stderr io.Writer) error {
	var certPEM []byte
	x5c := false
	if roots := km.RootCertificates(ctx); len(roots) > 0 {
		x5c = true
		// x5c mode: the registry trusts the root only, so key rotation never changes its config.
		for _, c := range roots {
			certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	} else {
		key, err := km.SigningKey(ctx)
		if err != nil {
			return err
		}
		if certPEM, err = signer.SelfSignedCertificatePEM(key, "Portcullis token signer", time.Now(), 10*365*24*time.Hour); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	authFile, bundle, jwksPath := filepath.Join(dir, "auth-token.yml"), filepath.Join(dir, "rootcertbundle.pem"), filepath.Join(dir, "jwks.json")
	if x5c {
		// No jwks: a key in it (or in the bundle) is trusted by kid with no expiry, so a
		// bare token signed through transit with a stolen signer token would verify for as
		// long as the file stays, past every short-lived leaf. The root alone is the trust.
		if err := os.WriteFile(bundle, certPEM, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(authFile, []byte(authSnippet(realm, service, issuer, bundle, "")), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s (the x5c root certificate); no jwks: in x5c mode registries trust the root only, "+
			"so no signing key outlives its short-lived leaf certificate\n", authFile, bundle)
		if err := os.Remove(jwksPath); err == nil {
			fmt.Fprintf(stdout, "removed %s: a registry still naming it would pin a signing key; give it %s\n", jwksPath, authFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil // tokens carry a chain to the bundle's root: no kid to check
	}
	jwks, err := signer.New(signer.Options{Issuer: issuer}, km).JWKS(ctx)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{bundle: certPEM, jwksPath: jwks, authFile: []byte(authSnippet(realm, service, issuer, bundle, jwksPath))} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s\n", authFile, bundle, jwksPath)
	key, err := km.SigningKey(ctx)
	if err != nil {
		return err
	}
	return checkWrittenTrust(filepath.Join(dir, "auth-token.yml"), regtrust.Header{Algorithm: string(key.Algorithm()), KeyID: key.ID()}, major, stderr)
}

// checkWrittenTrust runs the doctor's key checks on the files just written: a 3.x registry
// given them must trust the signing key (else it is a bug here). For a 2.x registry, named
// with -registry-version 2, a key it would refuse is an error with the fix; 3.x users hear
// nothing of 2.x (libtrust key IDs are no concern of theirs). What a 3.x registry given only
// part of the files would do is said before a user finds out from a 401.
func checkWrittenTrust(authFile string, h regtrust.Header, major regtrust.Major, stderr io.Writer) error {
	s, err := regtrust.Load(authFile)
	if err != nil {
		return fmt.Errorf("checking what was written: %w", err)
	}
	full := s.Check(h)
	if !full[1].Trusted {
		return fmt.Errorf("a 3.x registry given these files would refuse the signing key: %s", full[1].Why)
	}
	if major == regtrust.V2 {
		if !full[0].Trusted {
			return fmt.Errorf("a distribution 2.x registry given these files would refuse the tokens: %s; fix: %s", full[0].Why, full[0].Fix)
		}
		return nil // 2.x reads the bundle only: the jwks line below is not its concern
	}
	bundleOnly := *s
	bundleOnly.KeySet = nil
	if v := bundleOnly.Check(h)[1]; !v.Trusted {
		fmt.Fprintf(stderr, "warning: keep the jwks line: a distribution 3.x registry given only the rootcertbundle would refuse the tokens: %s\n", v.Why)
	}
	return nil
}

// authSnippet is the registry config's auth section. Registry 2.8 reads rootcertbundle and
// ignores jwks; 3.x reads both. jwks is empty in x5c mode: no line then.
func authSnippet(realm, service, issuer, bundle, jwks string) string {
	s := fmt.Sprintf(`auth:
  token:
    realm: %s
    service: %s
    issuer: %s
    rootcertbundle: %s
`, realm, service, issuer, bundle)
	if jwks != "" {
		s += fmt.Sprintf("    jwks: %s\n", jwks)
	}
	return s
}
