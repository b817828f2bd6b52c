// Command portcullis is the token server for container registries. One binary runs any
// service: -target=all (default, one process) or gateway|authn|authz|signer (split).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/portcullis-dev/portcullis/pkg/telemetry"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "doctor" {
		// The doctor's exit status tells "found a problem" (1) from "could not run" (2).
		os.Exit(runDoctorCmd(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "portcullis:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "registry-config":
			return runRegistryConfig(ctx, args[1:], stdout, stderr)
		case "keys":
			return runKeys(ctx, args[1:], stdout, stderr)
		case "sessions":
			return runSessions(ctx, args[1:], stdout, stderr)
		case "robots":
			return runRobots(ctx, args[1:], stdout, stderr)
		case "token":
			return tokenCmdExit(runTokenCmd(ctx, args[1:], os.Stdin, stdout, stderr))
		case "policy":
			return runPolicy(ctx, args[1:], stdout, stderr)
		case "migrate":
			return runMigrate(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("portcullis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "all", "what to run: all, gateway, authn, authz or signer")
	cfgPath := fs.String("config", "", "config file (YAML); without it the embedded development defaults run")
	expandEnv := fs.Bool("config.expand-env", false, "expand ${VAR} references in the config file")
	verify := fs.Bool("verify-config", false, "check the config file, print every problem, and exit")
	dataDir := fs.String("data-dir", defaultDataDir, "where the development defaults keep their key and sample users, and the default session store (sessions.db) lives")
	listen := fs.String("gateway.listen", envOr("PORTCULLIS_GATEWAY_LISTEN", ""), "gateway HTTP address (overrides the config; env PORTCULLIS_GATEWAY_LISTEN)")
	adminListen := fs.String("admin.listen", "", "admin gRPC address (overrides admin.listen, so the authn and signer targets can share one config file on one host)")
	logLevel := fs.String("log.level", "", "debug, info, warn or error (overrides the config)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for make bench)")
	devAnywhere := fs.Bool("dev", false, "let the development defaults (sample users admin/admin) listen on a non-loopback address")
	certFile := fs.String("internal-tls.cert-file", "", "this process's internal TLS certificate (overrides internal_tls.cert_file, so the split targets can share one config file)")
	keyFile := fs.String("internal-tls.key-file", "", "key of -internal-tls.cert-file (overrides internal_tls.key_file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, dev, err := loadConfig(*cfgPath, *expandEnv, *dataDir)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Gateway.Listen = *listen
	}
	if *adminListen != "" {
		cfg.Admin.Listen = *adminListen
	}
	if dev && !*devAnywhere {
		if host, _, err := net.SplitHostPort(cfg.Gateway.Listen); err == nil && !isLoopback(host) {
			return fmt.Errorf("the development defaults (sample users alice/alice and admin/admin) will not listen on %s, "+
				"which is not a loopback address: pass -config with your own users, or -dev to run them there anyway", cfg.Gateway.Listen)
		}
	}
	if *certFile != "" {
		cfg.InternalTLS.CertFile = *certFile
	}
	if *keyFile != "" {
		cfg.InternalTLS.KeyFile = *keyFile
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *verify {
		fmt.Fprintln(stdout, "configuration OK")
		return nil
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	log := telemetry.NewLogger(stderr, level)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := NewApp(cfg, log)
	go func() {
		select {
		case <-app.Ready:
			if app.GatewayAddr != "" {
				printBanner(stdout, cfg, app, dev, *cfgPath, *dataDir)
			}
		case <-ctx.Done():
		}
	}()
	return app.Run(ctx, *target)
}

func loadConfig(path string, expandEnv bool, dataDir string) (*Config, bool, error) {
	if path == "" {
		c, err := DevConfig(dataDir)
		return c, true, err
	}
	c, err := Load(path, expandEnv)
	if c != nil {
		c.dataDir = dataDir
	}
	return c, false, err
}

func printBanner(w io.Writer, cfg *Config, app *App, dev bool, cfgPath, dataDir string) {
	base := strings.TrimSuffix(app.PublicURL, "/")
	realm := base + "/token"
	fmt.Fprintf(w, "Portcullis is running.\n  token endpoint: %s\n  jwks:           %s\n", realm, base+"/.well-known/jwks.json")
	if app.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics:        http://%s/metrics\n", app.MetricsAddr)
	}
	if app.AdminAddr != "" {
		fmt.Fprintf(w, "  admin gRPC API: %s\n", app.AdminAddr)
	}
	if dev {
		fmt.Fprintf(w, "  DEVELOPMENT DEFAULTS: sample users alice/alice (developers) and admin/admin (admins).\n"+
			"  Never run these in production: pass -config with your own users.\n")
	}
	source := "-config " + cfgPath
	if dev {
		source = "-data-dir " + dataDir
	}
	fmt.Fprintf(w, "\nPaste into your registry's config.yml; write the two files it names with\n  %s registry-config %s -realm %s -out DIR\n\n%s\n",
		os.Args[0], source, realm, authSnippet(realm, cfg.Gateway.Services[0], cfg.Signer.Issuer, "DIR/rootcertbundle.pem", "DIR/jwks.json"))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
