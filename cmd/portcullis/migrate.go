package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/deploy"
)

const migrateUsage = `usage: portcullis migrate docker-auth -out DIR CONFIG

Converts a cesanta/docker_auth config: its static users (to an htpasswd file), its LDAP
settings (to the ldap backend), its ACL (to the shipped acl policy's data), its token issuer
and lifetime. Writes DIR/portcullis.yaml, DIR/htpasswd and DIR/policy/, and reports every
setting it could not convert (Casbin, ext_authz, plugins, Mongo/XORM ACLs and users, the
OAuth logins). Check the result with: portcullis -config DIR/portcullis.yaml -verify-config
and portcullis policy eval -dir DIR/policy ...
`

// dockerAuthConfig is the part of docker_auth's config that converts; everything else is
// read as raw sections and reported.
type dockerAuthConfig struct {
	Server struct {
		Addr string `yaml:"addr"`
	} `yaml:"server"`
	Token struct {
		Issuer     string `yaml:"issuer"`
		Expiration int64  `yaml:"expiration"`
	} `yaml:"token"`
	Users map[string]struct {
		Password string              `yaml:"password"`
		Labels   map[string][]string `yaml:"labels"`
	} `yaml:"users"`
	LDAP *struct {
		Addr             string `yaml:"addr"`
		TLS              string `yaml:"tls"`
		InsecureSkip     bool   `yaml:"insecure_tls_skip_verify"`
		CACertificate    string `yaml:"ca_certificate"`
		BindDN           string `yaml:"bind_dn"`
		BindPasswordFile string `yaml:"bind_password_file"`
		Base             string `yaml:"base"`
		Filter           string `yaml:"filter"`
		Labels           map[string]struct {
			Attribute string `yaml:"attribute"`
			ParseCN   bool   `yaml:"parse_cn"`
			LowerCase bool   `yaml:"lower_case"`
		} `yaml:"labels"`
	} `yaml:"ldap_auth"`
	ACL []any `yaml:"acl"`
}

// unconvertible names docker_auth's sections Portcullis has no counterpart for, with what
// to do instead.
var unconvertible = map[string]string{
	"casbin_authz": "Casbin policies: write the rules as Rego (deploy/policies/README.md) or as acl rules",
	"ext_authz":    "an external authorizer program: express its decisions in Rego",
	"plugin_authz": "a Go plugin authorizer: express its decisions in Rego",
	"acl_mongo":    "an ACL kept in MongoDB: export it into the acl data (it has the same rule shape)",
	"acl_xorm":     "an ACL kept in SQL (XORM): export it into the acl data (it has the same rule shape)",
	"ext_auth":     "an external authenticator program: use htpasswd, LDAP, OIDC workload tokens or robot accounts",
	"plugin_authn": "a Go plugin authenticator: use htpasswd, LDAP, OIDC workload tokens or robot accounts",
	"mongo_auth":   "users kept in MongoDB: export them to htpasswd or move them to LDAP",
	"xorm_auth":    "users kept in SQL (XORM): export them to htpasswd or move them to LDAP",
	"google_auth":  "Google sign-in for docker login: use robot accounts or OIDC workload tokens",
	"github_auth":  "GitHub sign-in for docker login: use robot accounts or OIDC workload tokens",
	"gitlab_auth":  "GitLab sign-in for docker login: use robot accounts or OIDC workload tokens (GitLab CI's id_tokens)",
	"oidc_auth":    "interactive OIDC sign-in for docker login: use OIDC workload tokens for machines, LDAP for people",
	"lua_authz":    "Lua authorization: express its decisions in Rego",
	"lua_authn":    "Lua authentication: use htpasswd, LDAP, OIDC workload tokens or robot accounts",
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "docker-auth" {
		fmt.Fprint(stderr, migrateUsage)
		return errors.New("migrate: the one migration is docker-auth")
	}
	fs := flag.NewFlagSet("portcullis migrate docker-auth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write portcullis.yaml, htpasswd and policy/ into (required; must not exist or be empty)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, migrateUsage)
		return errors.New("migrate docker-auth: give -out DIR and the docker_auth config file")
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	rep, err := migrateDockerAuth(data, *out, time.Now)
	if err != nil {
		return fmt.Errorf("migrate docker-auth: %w", err)
	}
	rep.write(stdout, *out)
	return nil
}

type migrateReport struct {
	converted, notConverted []string
}

func (r *migrateReport) ok(format string, a ...any) {
	r.converted = append(r.converted, fmt.Sprintf(format, a...))
}
func (r *migrateReport) not(format string, a ...any) {
	r.notConverted = append(r.notConverted, fmt.Sprintf(format, a...))
}

func (r *migrateReport) write(w io.Writer, out string) {
	fmt.Fprintf(w, "wrote %s\n\nconverted:\n", out)
	for _, c := range r.converted {
		fmt.Fprintf(w, "  - %s\n", c)
	}
	if len(r.notConverted) == 0 {
		fmt.Fprintln(w, "\nnothing left unconverted")
		return
	}
	fmt.Fprintln(w, "\nNOT converted (do these by hand):")
	for _, c := range r.notConverted {
		fmt.Fprintf(w, "  - %s\n", c)
	}
}

var ldapAccountClause = regexp.MustCompile(`\(([A-Za-z][A-Za-z0-9-]*)=\$\{account\}\)`)

// migrateDockerAuth converts data into dir and says what it did and did not convert.
func migrateDockerAuth(data []byte, dir string, now func() time.Time) (*migrateReport, error) {
	var cfg dockerAuthConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("not a docker_auth config: %w", err)
	}
	var sections map[string]any
	if err := yaml.Unmarshal(data, &sections); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: give a new directory", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "policy"), 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	rep := &migrateReport{}
	var y strings.Builder
	fmt.Fprintf(&y, "# Converted from a docker_auth config by `portcullis migrate docker-auth` on %s.\n", now().UTC().Format(time.RFC3339))
	y.WriteString("# Review it, then: portcullis -config portcullis.yaml -verify-config\n")

	y.WriteString("gateway:\n")
	if cfg.Server.Addr != "" {
		addr := cfg.Server.Addr
		if strings.HasPrefix(addr, ":") {
			addr = "0.0.0.0" + addr
		}
		fmt.Fprintf(&y, "  listen: %q\n", addr)
		rep.ok("server.addr → gateway.listen %s", addr)
	}
	y.WriteString("  public_url: https://auth.example.com  # FIXME: the URL clients reach Portcullis at (the registries' realm is it + /token)\n")
	y.WriteString("  services: [registry.example.com]  # FIXME: docker_auth accepts any service; list your registries' auth.token.service\n")
	rep.not("gateway.public_url and gateway.services: docker_auth has no such settings; the written ones are placeholders (FIXME)")
	if cfg.Token.Expiration > 0 {
		fmt.Fprintf(&y, "  token_ttl: %ds\n", cfg.Token.Expiration)
		rep.ok("token.expiration → gateway.token_ttl %ds", cfg.Token.Expiration)
	}
	for _, k := range []string{"certificate", "key", "letsencrypt", "path_prefix", "net", "real_ip_header", "real_ip_pos"} {
		if srv, ok := sections["server"].(map[string]any); ok && srv[k] != nil && srv[k] != "" {
			rep.not("server.%s: Portcullis's gateway serves plain HTTP behind a TLS-terminating proxy (gateway.trusted_proxies), or set it up there", k)
		}
	}

	y.WriteString("authn:\n  backends:\n")
	if err := migrateUsers(&cfg, abs, &y, rep); err != nil {
		return nil, err
	}
	migrateLDAP(&cfg, &y, rep)

	fmt.Fprintf(&y, "authz:\n  opa:\n    dir: %q\n", filepath.Join(abs, "policy"))
	if err := migrateACL(&cfg, dir, rep); err != nil {
		return nil, err
	}
	y.WriteString("signer:\n")
	if cfg.Token.Issuer != "" {
		fmt.Fprintf(&y, "  issuer: %q\n", cfg.Token.Issuer)
		rep.ok("token.issuer → signer.issuer %q (the registries' auth.token.issuer stays as it is)", cfg.Token.Issuer)
	}
	fmt.Fprintf(&y, "  key: {type: local, config: {path: %q}}  # a new key: run portcullis registry-config and give the registries its files\n", filepath.Join(abs, "signing-key.pem"))
	if tok, ok := sections["token"].(map[string]any); ok && (tok["certificate"] != nil || tok["key"] != nil) {
		rep.not("token.certificate/key: docker_auth's signing key is not carried over; Portcullis makes its own (or uses Vault transit), and `portcullis registry-config` writes what the registries must trust")
	}

	keys := make([]string, 0, len(sections))
	for k := range sections {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, ok := unconvertible[k]; ok {
			rep.not("%s: %s", k, why)
		} else if !slices.Contains([]string{"server", "token", "users", "ldap_auth", "acl"}, k) {
			rep.not("%s: unknown to this converter", k)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "portcullis.yaml"), []byte(y.String()), 0o600); err != nil {
		return nil, err
	}
	return rep, nil
}

func migrateUsers(cfg *dockerAuthConfig, dir string, y *strings.Builder, rep *migrateReport) error {
	if len(cfg.Users) == 0 {
		return nil
	}
	names := make([]string, 0, len(cfg.Users))
	for n := range cfg.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	var lines []string
	for _, n := range names {
		u := cfg.Users[n]
		switch {
		case n == "":
			rep.ok(`users."" (anonymous access): Portcullis always lets anonymous callers ask; the ACL's account: "" rules decide what they get`)
			continue
		case !strings.HasPrefix(u.Password, "$2"):
			rep.not("users.%s: the password is not a bcrypt hash; set one with htpasswd -B", n)
			continue
		case strings.ContainsAny(n, ":\n"):
			rep.not("users.%q: a name htpasswd cannot hold", n)
			continue
		}
		lines = append(lines, n+":"+u.Password)
		if len(u.Labels) > 0 {
			rep.not("users.%s.labels: htpasswd users have groups, not labels; rewrite the ACL rules that match these labels against groups (or keep such users in LDAP)", n)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(y, "    - name: users\n      type: htpasswd\n      config:\n        path: %q\n", filepath.Join(dir, "htpasswd"))
	rep.ok("users → htpasswd (%d users; the bcrypt hashes as they were)", len(lines))
	return nil
}

func migrateLDAP(cfg *dockerAuthConfig, y *strings.Builder, rep *migrateReport) {
	l := cfg.LDAP
	if l == nil {
		return
	}
	scheme, startTLS := "ldap", false
	switch l.TLS {
	case "always":
		scheme = "ldaps"
	case "starttls":
		startTLS = true
	case "", "none":
		rep.not("ldap_auth.tls %q: passwords would cross the network in clear; the converted backend keeps it, but use ldaps or starttls", l.TLS)
	}
	y.WriteString("    - name: directory\n      type: ldap\n      config:\n")
	fmt.Fprintf(y, "        url: %s://%s\n", scheme, l.Addr)
	if startTLS {
		y.WriteString("        start_tls: true\n")
	}
	if l.InsecureSkip {
		y.WriteString("        insecure_skip_verify: true\n")
		rep.not("ldap_auth.insecure_tls_skip_verify: kept, but give ca_file instead")
	}
	if l.CACertificate != "" {
		fmt.Fprintf(y, "        ca_file: %q\n", l.CACertificate)
	}
	if l.BindDN != "" {
		fmt.Fprintf(y, "        bind_dn: %q\n        bind_password_file: %q\n", l.BindDN, l.BindPasswordFile)
	}
	fmt.Fprintf(y, "        user_search:\n          base_dn: %q\n", l.Base)
	if m := ldapAccountClause.FindStringSubmatch(l.Filter); m != nil {
		rest := strings.Replace(l.Filter, m[0], "", 1)
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "(&") && strings.HasSuffix(rest, ")") {
			inner := rest[2 : len(rest)-1]
			if strings.Count(inner, "(") == 1 {
				rest = inner
			}
		}
		if rest == "(&)" {
			rest = ""
		}
		fmt.Fprintf(y, "          username_attr: %s\n", m[1])
		if rest != "" {
			fmt.Fprintf(y, "          filter: %q\n", rest)
		}
		rep.ok("ldap_auth → the ldap backend (%s://%s; user search base %s, username attribute %s)", scheme, l.Addr, l.Base, m[1])
	} else {
		fmt.Fprintf(y, "          filter: %q  # FIXME: give username_attr; the name is matched with (username_attr=NAME)\n", l.Filter)
		rep.not("ldap_auth.filter %q: no (attr=${account}) clause to take the username attribute from; set user_search.username_attr by hand", l.Filter)
	}
	if len(l.Labels) > 0 {
		y.WriteString("        labels:\n")
		names := make([]string, 0, len(l.Labels))
		for n := range l.Labels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			lab := l.Labels[n]
			fmt.Fprintf(y, "          %s: %s\n", n, lab.Attribute)
			if lab.ParseCN || lab.LowerCase {
				rep.not("ldap_auth.labels.%s: parse_cn/lower_case are not applied (the label gets the attribute's first value as it is); for group membership use groups_from: memberOf or group_search", n)
			}
		}
		rep.ok("ldap_auth.labels → the ldap backend's labels (%s)", strings.Join(names, ", "))
	}
}

func migrateACL(cfg *dockerAuthConfig, dir string, rep *migrateReport) error {
	policy, err := fs.ReadFile(deploy.Policies, "policies/acl/policy.rego")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy", "policy.rego"), policy, 0o644); err != nil {
		return err
	}
	if cfg.ACL == nil {
		rep.not("acl: none in the config (the written policy denies everything until policy/data.yaml has rules)")
		cfg.ACL = []any{}
	}
	out, err := yaml.Marshal(map[string]any{"acl": cfg.ACL})
	if err != nil {
		return err
	}
	head := "# docker_auth's ACL, rule for rule (deploy/policies/acl/policy.rego has the semantics).\n"
	if err := os.WriteFile(filepath.Join(dir, "policy", "data.yaml"), append([]byte(head), out...), 0o644); err != nil {
		return err
	}
	rep.ok("acl → policy/data.yaml (%d rules, same order and meaning) with the shipped acl policy", len(cfg.ACL))
	return nil
}
