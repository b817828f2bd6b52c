package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

const certifyUsage = "usage: portcullis keys certify -config FILE [-interval D] [-vault-token-file FILE | -vault-auth-method approle -vault-role-id ID -vault-secret-id-file FILE | -vault-auth-method kubernetes -vault-role ROLE]"

// runCertify is `portcullis keys certify`, the x5c certifier: under its own Vault identity
// (never signer.key.config.auth) it makes the root certificate once and a short-lived leaf
// for every key version lacking a fresh one, and stores them where the signers read them.
// Once by default (cron, or after `keys rotate`); with -interval it keeps going (sidecar).
func runCertify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis keys certify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "Portcullis config file; signer.key must be type vault with x5c (required)")
	expandEnv := fs.Bool("config.expand-env", false, "expand ${VAR} references in the config file")
	interval := fs.Duration("interval", 0, "certify again every interval until stopped (a sidecar); 0 certifies once and exits")
	logLevel := fs.String("log.level", "info", "debug, info, warn or error")
	var auth vault.AuthConfig
	fs.StringVar(&auth.Method, "vault-auth-method", "token", "the certifier's Vault login: token, approle or kubernetes")
	fs.StringVar(&auth.TokenFile, "vault-token-file", envOr("PORTCULLIS_CERTIFIER_TOKEN_FILE", ""),
		"file holding the certifier's Vault token (env PORTCULLIS_CERTIFIER_TOKEN_FILE; without it $VAULT_TOKEN)")
	fs.StringVar(&auth.RoleID, "vault-role-id", "", "the certifier's AppRole role id")
	fs.StringVar(&auth.SecretIDFile, "vault-secret-id-file", "", "file holding the certifier's AppRole secret id")
	fs.StringVar(&auth.Role, "vault-role", "", "the certifier's Kubernetes auth role")
	fs.StringVar(&auth.ServiceAccountTokenFile, "vault-service-account-token-file", "", "Kubernetes service account token (default: the pod's)")
	fs.StringVar(&auth.MountPath, "vault-auth-mount", "", "mount path of the auth method (default: approle or kubernetes)")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		return usagef(fs.Name(), "%s", certifyUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("keys certify: -log.level: %w", err)
	}
	cfg, err := app.Load(*cfgPath, *expandEnv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	kc, err := keymanager.Decode(cfg.Signer.Key)
	if err != nil {
		return err
	}
	vc, ok := kc.(*vault.Config)
	if !ok || vc.X5C == nil {
		return fmt.Errorf("keys certify: signer.key in %s is not a vault key with x5c: there is nothing to certify", *cfgPath)
	}
	log := telemetry.NewLogger(stderr, level).With("component", "certifier")
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ce, err := vc.OpenCertifier(ctx, vault.CertifierDeps{Auth: auth, TokenLifetime: cfg.Signer.MaxTTL.D(), Interval: *interval, Logger: log})
	if err != nil {
		return err
	}
	defer ce.Close(context.WithoutCancel(ctx))
	if *interval == 0 {
		rep, err := ce.Certify(ctx)
		if err != nil {
			return fmt.Errorf("keys certify: %w", err)
		}
		return printCertifyReport(stdout, rep)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		// A failed pass (Vault sealed, a race with another certifier) is retried at the next
		// tick; the signers keep their leaves meanwhile.
		if rep, err := ce.Certify(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("x5c certify pass failed; retrying at the next interval", "error", err, "interval", *interval)
		} else {
			log.Debug("x5c certify pass", "root_created", rep.RootCreated, "written", rep.Written, "versions", len(rep.Leaves))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func printCertifyReport(w io.Writer, rep vault.CertifyReport) error {
	root := "kept"
	if rep.RootCreated {
		root = "created (give registries its certificate: portcullis registry-config)"
	}
	fmt.Fprintf(w, "root certificate %q %s, valid until %s\n", rep.Root.Subject.CommonName, root, rep.Root.NotAfter.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tLEAF\tNOT AFTER")
	for _, l := range rep.Leaves {
		notAfter := "-"
		if l.Certificate != nil {
			notAfter = l.Certificate.NotAfter.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", l.Version, l.State, l.Action, notAfter)
	}
	return tw.Flush()
}
