package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

// What login and logout share: the REGISTRY argument as docker reads it, and docker's config.

// registryFlags is the flag set login and logout both start from: usage, -docker-config and
// -timeout; each adds its own flags before parse.
type registryFlags struct {
	fs        *flag.FlagSet
	configDir *string
	timeout   *time.Duration
}

func newRegistryFlags(name, usage string, stderr io.Writer, timeout time.Duration, timeoutUsage string) *registryFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nflags:\n")
		fs.PrintDefaults()
	}
	return &registryFlags{
		fs:        fs,
		configDir: fs.String("docker-config", "", "the `DIR` of docker's config.json (default $DOCKER_CONFIG, else ~/.docker), as docker's --config"),
		timeout:   fs.Duration("timeout", timeout, timeoutUsage),
	}
}

// parse parses args and the one REGISTRY argument, then reads docker's config: before any
// request, a config that cannot be read or written is better known now. verb says what the
// command does with REGISTRY ("log in to").
func (r *registryFlags) parse(ctx context.Context, args []string, verb string) (host, base string, cfg *regclient.DockerConfigFile, err error) {
	arg, err := parseRegistryArgs(ctx, r.fs, args, verb)
	if err != nil {
		return "", "", nil, err
	}
	if *r.timeout <= 0 {
		return "", "", nil, usagef(r.fs.Name(), "-timeout must be positive")
	}
	if host, base, err = registryArg(arg); err != nil {
		return "", "", nil, usagef(r.fs.Name(), "%v", err)
	}
	if cfg, err = loadDockerConfig(*r.configDir); err != nil {
		return "", "", nil, err
	}
	return host, base, cfg, nil
}

// parseRegistryArgs parses fs and the one REGISTRY argument; flags may follow it too, as
// docker's do. verb says what the command does with it ("log in to").
func parseRegistryArgs(ctx context.Context, fs *flag.FlagSet, args []string, verb string) (string, error) {
	if err := parseFlags(ctx, fs, args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if err := parseFlags(ctx, fs, rest[1:]); err != nil {
			return "", err
		}
		rest = append(rest[:1:1], fs.Args()...)
	}
	switch {
	case len(rest) == 0:
		return "", usagef(fs.Name(), "give the REGISTRY to %s, e.g. localhost:5000 (see -h)", verb)
	case len(rest) > 1:
		return "", usagef(fs.Name(), "unexpected argument %q: give one REGISTRY (flags before or after it; see -h)", rest[1])
	}
	return rest[0], nil
}

// loadDockerConfig reads docker's config.json in dir (-docker-config), else where docker
// finds it ($DOCKER_CONFIG, ~/.docker).
func loadDockerConfig(dir string) (*regclient.DockerConfigFile, error) {
	if dir == "" {
		var err error
		if dir, err = regclient.DockerConfigDir(); err != nil {
			return nil, err
		}
	}
	return regclient.LoadDockerConfig(dir)
}

// registryArg reads REGISTRY as docker login and logout do: a host (with a port), or a URL whose
// host is taken. It returns the host (config.json's key) and the base URL to ping: plain http
// for a loopback registry, https otherwise, unless a scheme was given.
func registryArg(arg string) (host, base string, err error) {
	scheme := ""
	s := arg
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, s = strings.ToLower(s[:i]), s[i+3:]
		if scheme != "http" && scheme != "https" {
			return "", "", fmt.Errorf("REGISTRY %q: give a host like registry.example.com (or an http(s) URL)", arg)
		}
	}
	s, _, _ = strings.Cut(s, "/")
	u, err := url.Parse("//" + s)
	if err != nil || u.Host == "" || u.User != nil || u.Host != s {
		return "", "", fmt.Errorf("REGISTRY %q: give a host like registry.example.com or localhost:5000", arg)
	}
	host = strings.ToLower(u.Host)
	if scheme == "" {
		scheme = "https"
		if loopback.Host(u.Hostname()) {
			scheme = "http"
		}
	}
	pingHost := host
	switch host {
	case "docker.io", "index.docker.io":
		pingHost = "registry-1.docker.io"
	}
	return host, scheme + "://" + pingHost, nil
}

// helperServerURL is the server URL docker hands a credential helper for host: Docker Hub's
// historical index URL, else the host.
func helperServerURL(host string) string {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return "https://index.docker.io/v1/"
	}
	return host
}
