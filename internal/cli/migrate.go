package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/deploy"
)

const migrateUsage = `usage: portcullis migrate docker-auth -out DIR CONFIG

Converts a cesanta/docker_auth config: its static users (to an htpasswd file; users with
labels to a static backend in portcullis.yaml), anonymous access (authn.allow_anonymous:
false unless its users hold ""), its LDAP settings (to the ldap backend), its ACL (to the
shipped acl policy's data), its token issuer and lifetime. Writes DIR/portcullis.yaml,
DIR/htpasswd and DIR/policy/, and reports every setting it could not convert (Casbin, ext_authz, plugins, Mongo/XORM ACLs and users, the
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
	"google_auth":  "Google sign-in for docker login: configure sso: with https://accounts.google.com (subject: sub) and sign in with `portcullis login` (README: Sign in with your identity provider)",
	"github_auth":  "GitHub sign-in for docker login: GitHub is no OpenID provider; put people behind your company IdP (sso:) or use personal access tokens or robot accounts",
	"gitlab_auth":  "GitLab sign-in for docker login: configure sso: with GitLab as the OpenID provider and sign in with `portcullis login`; GitLab CI jobs use OIDC workload tokens (id_tokens)",
	"oidc_auth":    "interactive OIDC sign-in for docker login: configure sso: (issuer, client_id, client_secret_file, subject) and sign in with `portcullis login`; machines use OIDC workload tokens",
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
	if err := parseFlags(ctx, fs, args[1:]); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, migrateUsage)
		return usagef(fs.Name(), "migrate docker-auth: give -out DIR and the docker_auth config file")
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

	y.WriteString("authn:\n")
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
	// docker_auth authenticates a caller without credentials as the user "" and, when its
	// users lack "", denies by default (401 with a Basic challenge; its LDAP backend never
	// matches an empty name). Every ACL rule without an account would otherwise grant such
	// callers what it grants users.
	if _, ok := cfg.Users[""]; ok {
		y.WriteString("  allow_anonymous: true  # docker_auth's users had \"\": callers without credentials may ask\n")
		rep.ok(`users."" (anonymous access): kept: authn.allow_anonymous: true, and the ACL's account: "" rules decide what such callers get`)
	} else {
		y.WriteString("  allow_anonymous: false  # docker_auth's users had no \"\": it answered callers without credentials 401\n")
		rep.ok(`users has no "": docker_auth refuses callers without credentials → authn.allow_anonymous: false (401 with the Basic challenge, as docker_auth answers)`)
	}
	y.WriteString("  backends:\n")
	if len(cfg.Users) == 0 {
		return nil
	}
	names := make([]string, 0, len(cfg.Users))
	for n := range cfg.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	var lines []string
	// Users with labels go to the static backend, which carries them (several values each);
	// the others keep an htpasswd file an operator can edit with htpasswd -B.
	type staticUser struct { // static.User as the static backend reads it
		Name         string              `yaml:"name"`
		PasswordHash string              `yaml:"password_hash"`
		Labels       map[string][]string `yaml:"labels"`
	}
	var labelled []staticUser
	for _, n := range names {
		u := cfg.Users[n]
		switch {
		case n == "":
			continue
		case !strings.HasPrefix(u.Password, "$2"):
			rep.not("users.%s: the password is not a bcrypt hash; set one with htpasswd -B", n)
			continue
		case strings.ContainsAny(n, ":\n"):
			rep.not("users.%q: a name htpasswd cannot hold", n)
			continue
		}
		labels := map[string][]string{}
		for k, vs := range u.Labels {
			if k != "" && len(vs) > 0 {
				labels[k] = vs
			}
		}
		if len(labels) > 0 {
			labelled = append(labelled, staticUser{Name: n, PasswordHash: u.Password, Labels: labels})
			continue
		}
		lines = append(lines, n+":"+u.Password)
	}
	if len(lines) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(y, "    - name: users\n      type: htpasswd\n      config:\n        path: %q\n", filepath.Join(dir, "htpasswd"))
		rep.ok("users → htpasswd (%s; the bcrypt hashes as they were)", plural(len(lines), "user"))
	}
	if len(labelled) > 0 {
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(map[string]any{"users": labelled}); err != nil {
			return err
		}
		y.WriteString("    - name: labelled-users\n      type: static\n      config:\n")
		for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			y.WriteString("        " + l + "\n")
		}
		ns := make([]string, len(labelled))
		for i, u := range labelled {
			ns[i] = u.Name
		}
		rep.ok("users with labels → the static backend (%s: %s; labels with all their values, the bcrypt hashes as they were)", plural(len(labelled), "user"), strings.Join(ns, ", "))
	}
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
				rep.not("ldap_auth.labels.%s: parse_cn/lower_case are not applied (the label gets the attribute's values as they are); for group membership use groups_from: memberOf or group_search", n)
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
	for i, r := range cfg.ACL {
		rule, _ := r.(map[string]any)
		m, _ := rule["match"].(map[string]any)
		if c := refusedNameChar(m); c != "" {
			comment, _ := rule["comment"].(string)
			if comment == "" {
				comment = "no comment"
			}
			rep.not("acl[%d] (%s): it can only match repository names the distribution grammar refuses (every name it matches holds %q, which no repository name may, e.g. bob@test.com/x), which registries and Portcullis answer 400 before any rule runs, so the rule never grants: rename those repositories, or have the rule build valid names (a capture group such as ${account:1} can take the valid part)", i, comment, c)
		}
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

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

var placeholderRef = regexp.MustCompile(`\$\{[^}]*\}`)

// refusedNameChar says which character every repository name an ACL rule's match can match
// holds that the distribution grammar (pkg/scope) never allows anywhere in a name, or ""
// when some name it matches may be valid. docker_auth matches any name a client sends, so
// a rule written for names such as bob@test.com/x worked there; here such a request is a 400.
// It looks at the name pattern's required literal characters and, through ${account}, at
// the account pattern's; other placeholders (labels, capture groups) may take any value.
func refusedNameChar(m map[string]any) string {
	name, ok := m["name"].(string)
	if !ok {
		return ""
	}
	if t, ok := m["type"].(string); ok && t != "repository" {
		return ""
	}
	if c := requiredRefusedChar(placeholderRef.ReplaceAllString(name, "")); c != "" {
		return c
	}
	if acct, ok := m["account"].(string); ok && strings.Contains(name, "${account}") && !strings.Contains(acct, "${") {
		return requiredRefusedChar(acct)
	}
	return ""
}

// nameChar: the characters a repository name may hold somewhere (a registry host with a
// port first: upper case letters and ":" too).
func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/:", r)
}

// requiredRefusedChar is a character outside nameChar that every string matching the
// docker_auth pattern p (a "/…/" regexp or a path.Match glob) contains, or "".
func requiredRefusedChar(p string) string {
	if len(p) > 2 && strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") {
		re, err := syntax.Parse(p[1:len(p)-1], syntax.Perl)
		if err != nil {
			return ""
		}
		return regexpRefusedChar(re.Simplify())
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*', '?':
		case '[':
			// A class matches one of several characters: none of them is required.
			end := strings.IndexByte(p[i+1:], ']')
			if end < 0 {
				return ""
			}
			i += end + 1
		case '\\':
			i++
			if i < len(p) && !nameChar(rune(p[i])) {
				return string(p[i])
			}
		default:
			if r := rune(c); !nameChar(r) {
				return string(r)
			}
		}
	}
	return ""
}

func regexpRefusedChar(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			refused := !nameChar(r)
			// (?i): the rune or any of its case folds may stand there.
			for f := unicode.SimpleFold(r); refused && re.Flags&syntax.FoldCase != 0 && f != r; f = unicode.SimpleFold(f) {
				refused = !nameChar(f)
			}
			if refused {
				return string(r)
			}
		}
	case syntax.OpConcat, syntax.OpCapture:
		for _, sub := range re.Sub {
			if c := regexpRefusedChar(sub); c != "" {
				return c
			}
		}
	case syntax.OpPlus:
		return regexpRefusedChar(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return regexpRefusedChar(re.Sub[0])
		}
	}
	return ""
}
