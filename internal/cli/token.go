package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

const tokenUsage = `usage: portcullis token -registry URL [-scope SCOPE]...
         [-u USER (-p PASS | --password-stdin) [-offline] [-oauth] | -identity-token TOKEN [-u USER] | -docker-config
          | -exchange FILE|-]
         [-decode] [-insecure-realm] [-timeout D]

Pings URL/v2/ and follows the registry's WWW-Authenticate challenge. Standard output gets the
token and nothing else; what happened (and -decode's header and claims) goes to standard error.

-exchange is for workloads (a CI job, a pod): it reads the JWT their platform gave them from
FILE, or standard input for -, and trades it for the registry token by OAuth 2.0 token exchange
(RFC 8693, one POST to the realm), with no docker login. The realm decides whether it trusts the
JWT (Portcullis: its oidc backends); the JWT itself is never printed.

Credentials go only where they are safe: an https registry whose realm is plain http is
refused (-insecure-realm overrides, for a lab), and a request carrying credentials is not
followed through a redirect that leaves https or goes to another host.
`

// tokenCmd is `portcullis token` with what it reads from outside the flags injected.
type tokenCmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	keychain       authn.Keychain
	now            func() time.Time
	// http, when set, replaces the client built from -timeout (tests trust their own TLS
	// servers with it).
	http *http.Client
}

// runTokenCmd runs `portcullis token`: exit code 0 on success, 1 on any error and 2 on a
// usage error (a one-line message on stderr), 0 for -h.
func runTokenCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &tokenCmd{stdin: stdin, stdout: stdout, stderr: stderr, keychain: authn.DefaultKeychain, now: time.Now}
	return c.run(ctx, args)
}

func (c *tokenCmd) run(ctx context.Context, args []string) int {
	err := c.exec(ctx, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp): // and errFlagsProbed
		return 0
	}
	fmt.Fprintln(c.stderr, "portcullis token:", err)
	return exitCode(err)
}

func (c *tokenCmd) exec(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("portcullis token", flag.ContinueOnError)
	// Parse errors become one line of ours; only -h prints the usage.
	fs.SetOutput(io.Discard)
	registry := fs.String("registry", "", "the registry's base URL, e.g. https://registry.example.com (no scheme: https://)")
	var scopes multiFlag
	fs.Var(&scopes, "scope", "a scope to ask for, e.g. repository:team/app:pull,push; repeat for several (default: the challenge's scope, else none)")
	user := fs.String("u", "", "user name")
	pass := fs.String("p", "", "password (prefer --password-stdin: a flag shows in the process list)")
	passStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	identity := fs.String("identity-token", "", "a refresh token (docker's identitytoken): the OAuth2 refresh grant by POST, GET as a fallback")
	dockerConfig := fs.Bool("docker-config", false, "take the credentials from docker's config.json and its credential helpers, as docker and crane do "+
		"($DOCKER_CONFIG/config.json, else ~/.docker/config.json, else podman's auth.json); excludes -u, -p and -identity-token")
	offline := fs.Bool("offline", false, "ask for a refresh token too (docker login's offline_token=true; access_type=offline with -oauth) and print it on stderr")
	oauth := fs.Bool("oauth", false, "send the password grant by OAuth2 POST, as containerd does (default: GET with Basic, as docker does)")
	decode := fs.Bool("decode", false, "also print the token's header and claims on stderr (not verified)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the whole exchange may take")
	insecureRealm := fs.Bool("insecure-realm", false, "follow a plain-http realm named by an https registry (sends the credentials in clear; for a lab only)")
	exchange := fs.String("exchange", "", "exchange a workload's JWT, read from `FILE` (- for standard input), for the token: OAuth 2.0 token exchange (RFC 8693); "+
		"excludes -u, -p, --password-stdin, -identity-token, -docker-config and -offline")
	if err := probeFlags(ctx, fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stderr, tokenUsage+"\nflags:\n")
			fs.SetOutput(c.stderr)
			fs.PrintDefaults()
			return err
		}
		return usagef(fs.Name(), "%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return usagef(fs.Name(), "unexpected argument %q (flags go before it; see -h)", fs.Arg(0))
	}
	if *exchange != "" {
		// The JWT alone says who is asking: a second identity would leave it open whom the
		// token is for (the realm refuses both at once), and there is no refresh token to keep.
		var also []string
		for _, f := range []string{"-u", "-p", "--password-stdin", "-identity-token", "-docker-config", "-offline"} {
			if isSet(fs, strings.TrimLeft(f, "-")) {
				also = append(also, f)
			}
		}
		if len(also) > 0 {
			return usagef(fs.Name(), "-exchange excludes %s: the subject token alone says who is asking (see -h)", strings.Join(also, ", "))
		}
	}
	base, err := registryURL(*registry)
	if err != nil {
		return err
	}
	var subject string
	if *exchange != "" {
		// Read before anything goes on the wire: a wrong file fails here, not at the realm.
		if subject, err = c.readSubjectToken(*exchange); err != nil {
			return err
		}
	}
	cr, err := c.credentials(ctx, base, *user, *pass, *passStdin, *identity, *dockerConfig)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return errors.New("-timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: *timeout}
	}
	client := &regclient.Client{HTTP: hc, UserAgent: "portcullis-token", InsecureRealm: *insecureRealm}

	chs, err := client.Ping(ctx, base)
	if err != nil {
		if regclient.IsPlainHTTP(err) {
			return fmt.Errorf("%w: %s", err, plainHTTPFix(base))
		}
		return err
	}
	if chs == nil {
		fmt.Fprintf(c.stderr, "%s/v2/ answered 200 without credentials: the registry needs no authentication; no token to fetch\n", base)
		return nil
	}
	ch := regclient.PreferredChallenge(chs)
	fmt.Fprintf(c.stderr, "registry challenge: %s\n", terminalSafe(ch.String()))
	switch ch.Scheme {
	case "bearer":
	case "basic":
		fmt.Fprintln(c.stderr, "registry uses Basic auth (e.g. Amazon ECR); no token to fetch")
		if subject != "" {
			return errors.New("-exchange: a registry with Basic auth has no realm to exchange the JWT at")
		}
		if err := client.CheckBasic(ctx, base, cr); err != nil {
			if errors.Is(err, regclient.ErrNoCredentials) {
				return errors.New("no credentials to check: give -u and -p (or --password-stdin), or -docker-config")
			}
			return err
		}
		fmt.Fprintf(c.stderr, "the registry accepts %s's credentials with Basic: send them on every request\n", cr.Username)
		return nil
	default:
		return fmt.Errorf("the registry asks for %q authentication; this client speaks Bearer and Basic", ch.Scheme)
	}

	if err := regclient.CheckRealm(ch); err != nil {
		if !*insecureRealm {
			return fmt.Errorf("%w (-insecure-realm sends them anyway)", err)
		}
		fmt.Fprintf(c.stderr, "WARNING: -insecure-realm: following the plain-http realm %s of an https registry; credentials cross the network in clear\n", terminalSafe(ch.Realm()))
	}
	res, err := client.FetchToken(ctx, ch, regclient.Request{Scopes: scopes, Credentials: cr, Offline: *offline, OAuth: *oauth, SubjectToken: subject})
	if err != nil {
		var se *regclient.StatusError
		switch {
		case !errors.As(err, &se):
		case subject != "" && se.Code == "unsupported_grant_type":
			return fmt.Errorf("%w — the realm does not take the token exchange grant (RFC 8693): "+
				"log in with the JWT as the password (-u USER --password-stdin) if it accepts workload tokens that way", err)
		case subject != "" && se.Code == "invalid_grant":
			return fmt.Errorf("%w — the realm refused the JWT: check its issuer, audience (aud), expiry and claims against the realm's trust rules", err)
		case subject == "" && cr.Empty() && se.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w — the realm wants credentials: give -u, -identity-token, -docker-config or -exchange", err)
		}
		return err
	}
	c.report(res, *offline, cr)
	fmt.Fprintln(c.stdout, res.Token)
	if *decode {
		info, err := regclient.Decode(res.Token)
		if err != nil {
			// Some realms hand out opaque tokens: the token is still good, there is just
			// nothing to show.
			fmt.Fprintf(c.stderr, "-decode: the token is %v: some registries hand out opaque tokens; nothing to decode\n", err)
			return nil
		}
		return info.Write(c.stderr, c.now())
	}
	return nil
}

// report says on stderr how the token came, and gives the refresh token when there is one.
func (c *tokenCmd) report(res *regclient.Result, offline bool, cr regclient.Credentials) {
	if res.FellBack != nil {
		fmt.Fprintf(c.stderr, "the OAuth2 POST was not taken (%s); fell back to GET with Basic, as containerd does\n", res.FellBack)
	}
	who := "anonymously"
	switch res.Grant {
	case "password":
		who = "as " + cr.Username
	case "refresh_token":
		who = "with the refresh grant"
	case "token_exchange":
		who = "by token exchange"
	}
	scopes := "no scope: the token grants no access, as docker login's"
	if len(res.Scopes) > 0 {
		scopes = "scope " + strings.Join(res.Scopes, " ")
	}
	expires := "no expires_in (the protocol's default: 60s)"
	if res.ExpiresIn > 0 {
		expires = fmt.Sprintf("expires in %ds", res.ExpiresIn)
	}
	if res.Grant == "token_exchange" {
		fmt.Fprintf(c.stderr, "token from %s (service %q) %s (%s); %s; %s\n", res.Realm, res.Service, who, res.Method, scopes, expires)
	} else {
		fmt.Fprintf(c.stderr, "token from %s (service %q) by %s %s; %s; %s\n", res.Realm, res.Service, res.Method, who, scopes, expires)
	}
	// RFC 8693 §2.2.1: the realm names the scope when it granted other than was asked (a realm
	// may name it always; then it says nothing new).
	if granted := strings.Fields(res.GrantedScope); len(granted) > 0 && !sameWords(granted, res.Scopes) {
		fmt.Fprintf(c.stderr, "granted scope (less than asked): %s\n", terminalSafe(res.GrantedScope))
	}
	switch {
	case res.RefreshToken != "" && res.RefreshToken != cr.IdentityToken:
		fmt.Fprintf(c.stderr, "refresh token (secret; use it with -identity-token): %s\n", res.RefreshToken)
	case offline && res.RefreshToken == "":
		fmt.Fprintln(c.stderr, "asked for a refresh token (-offline), but the token endpoint gave none")
	}
}

// readSubjectToken reads -exchange's JWT from file, or standard input for "-". Errors name
// the file, never what it holds: a secret may be in the wrong place.
func (c *tokenCmd) readSubjectToken(file string) (string, error) {
	if file == "-" {
		tok, err := regclient.ReadSubjectToken(c.stdin)
		if err != nil {
			return "", fmt.Errorf("-exchange -: standard input: %w", err)
		}
		return tok, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("-exchange: %w", err)
	}
	defer f.Close()
	tok, err := regclient.ReadSubjectToken(f)
	if err != nil {
		return "", fmt.Errorf("-exchange %s: %w", file, err)
	}
	return tok, nil
}

// sameWords reports whether a and b hold the same words, in any order.
func sameWords(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// isSet reports whether the command line gave flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// credentials gathers the login from the flags or docker's config.
func (c *tokenCmd) credentials(ctx context.Context, base, user, pass string, passStdin bool, identity string, dockerConfig bool) (regclient.Credentials, error) {
	switch {
	case dockerConfig && (user != "" || pass != "" || passStdin || identity != ""):
		return regclient.Credentials{}, errors.New("-docker-config excludes -u, -p, --password-stdin and -identity-token")
	case pass != "" && passStdin:
		return regclient.Credentials{}, errors.New("-p and --password-stdin exclude each other")
	case identity != "" && (pass != "" || passStdin):
		return regclient.Credentials{}, errors.New("-identity-token replaces the password: drop -p and --password-stdin")
	case (pass != "" || passStdin) && user == "":
		return regclient.Credentials{}, errors.New("a password needs a user: give -u")
	case user != "" && pass == "" && !passStdin && identity == "":
		return regclient.Credentials{}, errors.New("-u needs a password: give -p or --password-stdin")
	}
	// A secret in a flag's value shows in the process list and the shell's history; it
	// still works, as docker's -p does, with a pointer to the safe form.
	if pass != "" {
		fmt.Fprintln(c.stderr, "WARNING: -p puts the password in the process list and the shell's history: use --password-stdin (or -docker-config)")
	}
	if identity != "" {
		fmt.Fprintln(c.stderr, "WARNING: -identity-token puts the refresh token in the process list and the shell's history: "+
			"use -docker-config, which reads it from docker's config.json or its credential helper")
	}
	if dockerConfig {
		cr, found, err := regclient.KeychainCredentials(ctx, c.keychain, base)
		if err != nil {
			return regclient.Credentials{}, err
		}
		if !found {
			fmt.Fprintf(c.stderr, "docker's config has no credentials for %s: asking anonymously\n", hostOf(base))
		} else {
			fmt.Fprintf(c.stderr, "credentials for %s from docker's config: %s\n", hostOf(base), cr)
		}
		return cr, nil
	}
	if passStdin {
		// Like docker login --password-stdin: all of stdin, less the final line break.
		b, err := io.ReadAll(io.LimitReader(c.stdin, 64<<10))
		if err != nil {
			return regclient.Credentials{}, fmt.Errorf("--password-stdin: %w", err)
		}
		pass = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if pass == "" {
			return regclient.Credentials{}, errors.New("--password-stdin: standard input holds no password")
		}
	}
	return regclient.Credentials{Username: user, Password: pass, IdentityToken: identity}, nil
}

// registryURL checks -registry and gives it a scheme (https:// when none): the base URL
// that /v2/ is appended to.
func registryURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("-registry is required (see -h)")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("-registry %q is not an http(s) base URL like https://registry.example.com", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// plainHTTPFix is what `token` and `doctor` both say when base, an https URL (perhaps
// given without a scheme), is answered in plain HTTP.
func plainHTTPFix(base string) string {
	return fmt.Sprintf("give -registry %s (a registry given without a scheme is taken as https, as docker does)",
		"http://"+strings.TrimPrefix(base, "https://"))
}

// terminalSafe replaces what a terminal would act on: the registry chose this text.
func terminalSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return base
}
