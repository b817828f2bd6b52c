package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/portcullis-dev/portcullis/internal/loopback"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/spf13/pflag"

	"github.com/portcullis-dev/portcullis/internal/telemetry"
)

// serveOptions are the server's flags (portcullis [serve] ...).
type serveOptions struct {
	target, cfgPath, dataDir, listen, adminListen, logLevel, cpuProfile, certFile, keyFile string
	expandEnv, verify, devAnywhere                                                         bool
}

func (o *serveOptions) register(fs *pflag.FlagSet) {
	fs.SortFlags = false
	fs.StringVar(&o.target, "target", "all", "what to run: all, gateway, authn, authz or signer")
	fs.StringVar(&o.cfgPath, "config", "", "config file (YAML); without it the embedded development defaults run")
	fs.BoolVar(&o.expandEnv, "config.expand-env", false, "expand ${VAR} references in the config file")
	fs.BoolVar(&o.verify, "verify-config", false, "check the config file, print every problem, and exit")
	fs.StringVar(&o.dataDir, "data-dir", app.DefaultDataDir, "where the development defaults keep their key and sample users, and the default session store (sessions.db) lives")
	fs.StringVar(&o.listen, "gateway.listen", envOr("PORTCULLIS_GATEWAY_LISTEN", ""), "gateway HTTP address (overrides the config; env PORTCULLIS_GATEWAY_LISTEN)")
	fs.StringVar(&o.adminListen, "admin.listen", "", "admin gRPC address (overrides admin.listen, so the authn and signer targets can share one config file on one host)")
	fs.StringVar(&o.logLevel, "log.level", "", "debug, info, warn or error (overrides the config)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for make bench)")
	fs.BoolVar(&o.devAnywhere, "dev", false, "let the development defaults (sample users admin/admin) listen on a non-loopback address")
	fs.StringVar(&o.certFile, "internal-tls.cert-file", "", "this process's internal TLS certificate (overrides internal_tls.cert_file, so the split targets can share one config file)")
	fs.StringVar(&o.keyFile, "internal-tls.key-file", "", "key of -internal-tls.cert-file (overrides internal_tls.key_file)")
}

// run is the server: load and check the config, then run the target until ctx ends or a
// signal comes.
func (o *serveOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	cfg, dev, err := app.LoadConfig(o.cfgPath, o.expandEnv, o.dataDir)
	if err != nil {
		return err
	}
	if o.listen != "" {
		cfg.Gateway.Listen = o.listen
	}
	if o.adminListen != "" {
		cfg.Admin.Listen = o.adminListen
	}
	if dev && !o.devAnywhere {
		if host, _, err := net.SplitHostPort(cfg.Gateway.Listen); err == nil && !loopback.Host(host) {
			return fmt.Errorf("the development defaults (sample users alice/alice and admin/admin) will not listen on %s, "+
				"which is not a loopback address: pass -config with your own users, or -dev to run them there anyway", cfg.Gateway.Listen)
		}
	}
	if o.certFile != "" {
		cfg.InternalTLS.CertFile = o.certFile
	}
	if o.keyFile != "" {
		cfg.InternalTLS.KeyFile = o.keyFile
	}
	if o.logLevel != "" {
		cfg.Log.Level = o.logLevel
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if o.verify {
		for _, d := range cfg.Deprecations() {
			fmt.Fprintln(stderr, "warning:", d)
		}
		fmt.Fprintln(stdout, "configuration OK")
		return nil
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	log := telemetry.NewLoggerFormat(stderr, level, cfg.Log.Format)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
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
	srv := app.New(cfg, log)
	go func() {
		select {
		case <-srv.Ready:
			if srv.GatewayAddr != "" {
				printBanner(stdout, cfg, srv, dev, o.cfgPath, o.dataDir)
			}
		case <-ctx.Done():
		}
	}()
	return srv.Run(ctx, o.target)
}

func printBanner(w io.Writer, cfg *app.Config, srv *app.App, dev bool, cfgPath, dataDir string) {
	base := strings.TrimSuffix(srv.PublicURL, "/")
	realm := base + "/token"
	fmt.Fprintf(w, "Portcullis is running.\n  token endpoint: %s\n  jwks:           %s\n", realm, base+"/.well-known/jwks.json")
	if cfg.Sessions.On() { // the pages and the device flow keep their state with the sessions
		fmt.Fprintf(w, "  sign-in page:   %s/ (portcullis login <registry> signs in through it)\n", base)
	}
	if srv.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics:        http://%s/metrics\n", srv.MetricsAddr)
	}
	if srv.AdminAddr != "" {
		fmt.Fprintf(w, "  admin gRPC API: %s\n", srv.AdminAddr)
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
