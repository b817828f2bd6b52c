package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/portcullis-dev/portcullis/internal/regtrust"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
	"github.com/portcullis-dev/portcullis/pkg/scope"
)

const doctorUsage = `usage: portcullis doctor -registry URL [-scope SCOPE]...
         [-u USER (-p PASS | --password-stdin) | -identity-token TOKEN | -docker-config]
         [-registry-config FILE] [-token FILE] [-insecure-realm] [-timeout D]

Walks the chain a client walks — the registry's challenge, the token endpoint, the token, the
registry's verdict on it — and says in plain words what is wrong and how to fix it. With
-registry-config (the registry's config file) it also checks the registry's trust files
against the token's key, for distribution 2.x and 3.x. Credentials are never sent to a
plain-http realm of an https registry (-insecure-realm overrides) nor through a redirect that
leaves https or goes to another host. Exit status: 0 when nothing is wrong,
1 when a problem was found, 2 when the doctor could not run.
`

// registryLeeway is the clock skew distribution allows on exp and nbf.
const registryLeeway = 60 * time.Second

// doctorCmd is `portcullis doctor` with what it reads from outside the flags injected.
type doctorCmd struct {
	tok  tokenCmd // for its credential flags and docker-config reading
	http *http.Client
	out  io.Writer
	now  func() time.Time

	problems int
	// tokenProblems counts problems found in the token itself (issuer, audience, time),
	// which explain a refusal by the registry without its trust files.
	tokenProblems int
	// insecureRealm is -insecure-realm: follow a plain-http realm of an https registry.
	insecureRealm bool
}

func runDoctorCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	d := &doctorCmd{tok: tokenCmd{stdin: stdin, stdout: stdout, stderr: stderr, keychain: authn.DefaultKeychain, now: time.Now},
		out: stdout, now: time.Now}
	return d.run(ctx, args)
}

func (d *doctorCmd) run(ctx context.Context, args []string) int {
	err := d.exec(ctx, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(d.tok.stderr, "portcullis doctor:", err)
		return 2
	case d.problems > 0:
		fmt.Fprintf(d.out, "\n%d problem(s) found\n", d.problems)
		return 1
	}
	fmt.Fprintln(d.out, "\nno problem found")
	return 0
}

func (d *doctorCmd) ok(format string, args ...any) {
	fmt.Fprintf(d.out, "  ok       %s\n", terminalSafe(fmt.Sprintf(format, args...)))
}

func (d *doctorCmd) note(format string, args ...any) {
	fmt.Fprintf(d.out, "  note     %s\n", terminalSafe(fmt.Sprintf(format, args...)))
}

func (d *doctorCmd) problem(fix, format string, args ...any) {
	d.problems++
	fmt.Fprintf(d.out, "  PROBLEM  %s\n", terminalSafe(fmt.Sprintf(format, args...)))
	if fix != "" {
		fmt.Fprintf(d.out, "     fix:  %s\n", terminalSafe(fix))
	}
}

func (d *doctorCmd) exec(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("portcullis doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	registry := fs.String("registry", "", "the registry's base URL as clients reach it, e.g. https://registry.example.com")
	var scopes multiFlag
	fs.Var(&scopes, "scope", "a scope to ask for and check, e.g. repository:team/app:pull; repeat for several")
	user := fs.String("u", "", "user name")
	pass := fs.String("p", "", "password (prefer --password-stdin)")
	passStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	identity := fs.String("identity-token", "", "a refresh token instead of a password")
	dockerConfig := fs.Bool("docker-config", false, "take the credentials from docker's config.json and its credential helpers")
	regConfig := fs.String("registry-config", "", "the registry's config file: check its auth.token settings and trust files against the token")
	tokenFile := fs.String("token", "", "check this token (a file, or - for standard input) instead of fetching one")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the whole check may take")
	fs.BoolVar(&d.insecureRealm, "insecure-realm", false, "send the credentials to a plain-http realm named by an https registry anyway (in clear; for a lab only)")
	if err := probeFlags(ctx, fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(d.tok.stderr, doctorUsage+"\nflags:\n")
			fs.SetOutput(d.tok.stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before it; see -h)", fs.Arg(0))
	}
	base, err := registryURL(*registry)
	if err != nil {
		return err
	}
	if *tokenFile == "-" && *passStdin {
		return errors.New("-token - and --password-stdin both want standard input")
	}
	for _, s := range scopes {
		if _, err := scope.Parse(s); err != nil {
			return fmt.Errorf("-scope: %w", err)
		}
	}
	cr, err := d.tok.credentials(ctx, base, *user, *pass, *passStdin, *identity, *dockerConfig)
	if err != nil {
		return err
	}
	var given string
	if *tokenFile != "" {
		if given, err = readTokenFile(*tokenFile, d.tok.stdin); err != nil {
			return err
		}
	}
	if *timeout <= 0 {
		return errors.New("-timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if d.http == nil {
		d.http = &http.Client{Timeout: *timeout}
	}
	fmt.Fprintf(d.out, "portcullis doctor: %s\n", base)
	var settings *regtrust.Settings
	if *regConfig != "" {
		settings = d.loadSettings(*regConfig)
	}
	d.check(ctx, base, settings, scopes, cr, given)
	return nil
}

func readTokenFile(name string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("-token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("-token: no token in it")
	}
	return t, nil
}

func (d *doctorCmd) loadSettings(path string) *regtrust.Settings {
	s, err := regtrust.Load(path)
	if s == nil {
		d.problem("give the registry's own config file (the one `registry serve` reads)", "registry config %s: %v", path, err)
		return nil
	}
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			d.problem("", "registry config: %s", e)
		}
	} else {
		d.ok("registry config %s: realm %s, service %q, issuer %q, %d bundle certificate(s)%s",
			path, s.Realm, s.Service, s.Issuer, len(s.Certs), map[bool]string{true: ", a jwks file", false: ""}[s.KeySet != nil])
	}
	return s
}

// check walks the chain; each step reports what it found and returns when the next step
// cannot run.
func (d *doctorCmd) check(ctx context.Context, base string, settings *regtrust.Settings, scopes []string, cr regclient.Credentials, given string) {
	client := &regclient.Client{HTTP: d.http, UserAgent: "portcullis-doctor", ClientID: "portcullis-doctor", InsecureRealm: d.insecureRealm}
	ch, ok := d.ping(ctx, client, base, cr)
	if !ok {
		return
	}
	d.checkRealm(base, ch, settings)
	if given == "" && regclient.CheckRealm(ch) != nil {
		// Reported by checkRealm; asking the realm would hand it the password in clear.
		if !d.insecureRealm {
			d.note("nothing was sent to it: the doctor does not hand credentials to a plain-http realm of an https registry (-insecure-realm does, for a lab)")
			return
		}
		d.note("-insecure-realm: asking the plain-http realm anyway; the credentials cross the network in clear")
	}

	raw := given
	fetched := given == ""
	if fetched {
		res, err := client.FetchToken(ctx, ch, regclient.Request{Scopes: scopes, Credentials: cr})
		if err != nil {
			d.tokenRefused(err, ch, cr)
			return
		}
		raw = res.Token
		d.ok("the token endpoint gave a token (%s, %s grant, %s)", res.Method, res.Grant, orAll(res.Scopes))
	} else {
		d.note("checking the token given with -token, not fetching one")
	}

	info, err := regclient.Decode(raw)
	if err != nil {
		d.note("the token is not a JWT (%v): opaque tokens cannot be checked here; asking the registry only", err)
	} else {
		before := d.problems
		d.checkToken(info, ch, settings, scopes, fetched)
		d.tokenProblems = d.problems - before
	}
	d.checkWithRegistry(ctx, base, raw, info, settings, scopes)
}

// ping asks /v2/ without credentials; it returns the Bearer challenge to follow.
func (d *doctorCmd) ping(ctx context.Context, client *regclient.Client, base string, cr regclient.Credentials) (regclient.Challenge, bool) {
	target := base + "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		d.problem("", "GET %s: %v", target, err)
		return regclient.Challenge{}, false
	}
	resp, err := d.http.Do(req)
	if err != nil && regclient.IsPlainHTTP(err) {
		// The same words as `portcullis token`: GET …: the server speaks plain HTTP.
		d.problem(plainHTTPFix(base), "GET %s: %v", target, regclient.ErrPlainHTTP)
		return regclient.Challenge{}, false
	}
	if err != nil {
		d.problem("check the URL, that the registry runs and listens there, and for https that this machine trusts its certificate",
			"the registry is unreachable: %v", err)
		return regclient.Challenge{}, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		if skew := d.now().Sub(date); skew > 30*time.Second || skew < -30*time.Second {
			d.problem("synchronise both clocks (NTP); registries allow 60 s of skew on a token's exp and nbf",
				"this machine's clock and the registry's differ by %s", skew.Round(time.Second))
		}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		d.note("GET %s answered 200 without credentials: the registry needs no authentication, so there is nothing more to check", target)
		return regclient.Challenge{}, false
	case http.StatusUnauthorized:
	case http.StatusNotFound:
		d.problem("give the registry's base URL, without /v2/ or a repository path", "GET %s answered 404: no registry API there", target)
		return regclient.Challenge{}, false
	default:
		d.problem("", "GET %s answered %s, want 401 with a challenge", target, resp.Status)
		return regclient.Challenge{}, false
	}
	var chs []regclient.Challenge
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		cs, err := regclient.ParseChallenges(v)
		if err != nil {
			d.problem("fix the registry's auth settings", "the registry's WWW-Authenticate header does not parse: %v", err)
			return regclient.Challenge{}, false
		}
		chs = append(chs, cs...)
	}
	if len(chs) == 0 {
		d.problem("configure the registry's auth section", "GET %s answered 401 without a WWW-Authenticate challenge: no client can log in", target)
		return regclient.Challenge{}, false
	}
	ch := regclient.PreferredChallenge(chs)
	ch.Registry = base
	switch ch.Scheme {
	case "bearer":
		d.ok("the registry answers with a Bearer challenge: %s", ch.String())
		return ch, true
	case "basic":
		d.note("the registry asks for Basic credentials on every request (like Amazon ECR): no token server is involved")
		switch err := client.CheckBasic(ctx, base, cr); {
		case errors.Is(err, regclient.ErrNoCredentials):
			d.note("give -u and -p to check credentials against it")
		case err != nil:
			d.problem("check the user name and password (or the registry's htpasswd file)", "the registry refuses the credentials: %v", err)
		default:
			d.ok("the registry accepts %s's credentials", cr.Username)
		}
	default:
		d.problem("", "the registry asks for %q authentication, which container clients do not speak", ch.Scheme)
	}
	return regclient.Challenge{}, false
}

// checkRealm looks at the realm and service as clients will: go-containerregistry (crane,
// and oras through it) refuses a plain-http realm for an https registry and a realm on a
// private, loopback or link-local IP literal unless it is the registry's own host:port.
func (d *doctorCmd) checkRealm(base string, ch regclient.Challenge, settings *regtrust.Settings) {
	reg, _ := url.Parse(base)
	realm, err := url.Parse(ch.Realm())
	switch {
	case ch.Realm() == "":
		d.problem("set auth.token.realm in the registry config to Portcullis's token endpoint", "the challenge names no realm")
	case err != nil || (realm.Scheme != "http" && realm.Scheme != "https") || realm.Host == "":
		d.problem("set auth.token.realm to an http(s) URL", "the realm %q is not an http(s) URL", ch.Realm())
	default:
		if realm.Scheme == "http" && reg.Scheme == "https" {
			d.problem("serve the token endpoint over https and put that URL in auth.token.realm",
				"the realm %s is plain http while the registry is https: crane and oras refuse it, and passwords would cross the network in clear", ch.Realm())
		}
		if ip, err := netip.ParseAddr(strings.Trim(realm.Hostname(), "[]")); err == nil && realm.Host != reg.Host &&
			(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
			d.problem(fmt.Sprintf("name the realm by a host name in auth.token.realm (e.g. %s://localhost:%s%s), or serve it on the registry's own host:port",
				realm.Scheme, portOf(realm), realm.Path),
				"the realm %s is on the IP address %s while clients reach the registry as %s: crane and oras refuse realms on private, loopback and link-local addresses (docker and skopeo still follow it)",
				ch.Realm(), ip, reg.Host)
		}
	}
	if ch.Service() == "" {
		d.problem("set auth.token.service in the registry config", "the challenge names no service: tokens cannot say which registry they are for")
	}
	if settings != nil {
		if settings.Realm != "" && settings.Realm != ch.Realm() {
			d.problem("check that -registry-config is the file this registry runs with, and restart it after a change",
				"the registry config says realm %s, but the registry answers with realm %s", settings.Realm, ch.Realm())
		}
		if settings.Service != "" && settings.Service != ch.Service() {
			d.problem("check that -registry-config is the file this registry runs with, and restart it after a change",
				"the registry config says service %q, but the registry answers with service %q", settings.Service, ch.Service())
		}
	}
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// tokenRefused explains why the token endpoint gave no token.
func (d *doctorCmd) tokenRefused(err error, ch regclient.Challenge, cr regclient.Credentials) {
	var se *regclient.StatusError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &se) && strings.Contains(se.Message, "unknown service"):
		d.problem(fmt.Sprintf("add %q to Portcullis's gateway.services, or set the registry's auth.token.service to a service Portcullis serves", ch.Service()),
			"the token endpoint does not serve the registry's service %q: %v", ch.Service(), err)
	case errors.As(err, &se) && (se.StatusCode == http.StatusUnauthorized || se.Code == "invalid_grant"):
		if cr.Empty() {
			d.problem("give -u and -p (or --password-stdin, -identity-token, -docker-config)", "the token endpoint wants credentials: %v", err)
		} else {
			d.problem("check the user name and password; `portcullis sessions`/`robots` list refresh tokens and robot accounts", "the token endpoint refuses %s: %v", cr, err)
		}
	case errors.As(err, &se) && se.StatusCode == http.StatusTooManyRequests:
		d.problem("wait for the Retry-After: a lock ends by itself (authn.lockout base_delay..max_delay) and no admin call lifts it; "+
			"if every client reaches Portcullis through a proxy or ingress, set gateway.trusted_proxies so addresses are the clients' own (README, Brute-force protection)",
			"the token endpoint locked the user out: %v", err)
	case errors.As(err, &se):
		d.problem("", "the token endpoint refused: %v", err)
	case errors.As(err, &ne) || errors.As(err, &ue):
		d.problem("check that the realm's host resolves from clients and that Portcullis listens there (gateway.listen, gateway.public_url)",
			"the realm %s is unreachable: %v", ch.Realm(), err)
	default:
		d.problem("", "getting a token failed: %v", err)
	}
}

func orAll(scopes []string) string {
	if len(scopes) == 0 {
		return "no scope"
	}
	return "scope " + strings.Join(scopes, " ")
}

// checkToken compares the token with the challenge, the registry's settings and the clock.
func (d *doctorCmd) checkToken(ti *regclient.TokenInfo, ch regclient.Challenge, settings *regtrust.Settings, scopes []string, fetched bool) {
	now := d.now()
	d.ok("token: alg %s, kid %s, issuer %q, subject %q, audience %s", ti.Algorithm, orNone(ti.KeyID), ti.Issuer, ti.Subject, strings.Join(ti.Audience, ","))
	if ch.Service() != "" && !slices.Contains(ti.Audience, ch.Service()) {
		d.problem("ask for a token for the registry's service (clients send the challenge's service)",
			"the token is for audience %q, but the registry (service %q) accepts only tokens for its own service", strings.Join(ti.Audience, ","), ch.Service())
	}
	if settings != nil && settings.Issuer != "" && ti.Issuer != settings.Issuer {
		d.problem(fmt.Sprintf("set auth.token.issuer: %s in the registry config (or Portcullis's signer.issuer to %s)", ti.Issuer, settings.Issuer),
			"the token's issuer is %q, but the registry trusts only issuer %q", ti.Issuer, settings.Issuer)
	}
	switch {
	case ti.Expiry.IsZero():
		d.problem("issue tokens with an exp claim", "the token has no exp: registries read it as expired in 1970")
	case now.After(ti.Expiry.Add(registryLeeway)):
		d.problem("get a new token: clients do it on the next 401; if fresh tokens are expired, the token server's clock is behind",
			"the token expired at %s, %s ago (registries allow 60 s of skew)", ti.Expiry.Format(time.RFC3339), now.Sub(ti.Expiry).Round(time.Second))
	case now.After(ti.Expiry):
		d.note("the token expired %s ago, within the registries' 60 s of leeway", now.Sub(ti.Expiry).Round(time.Second))
	default:
		d.ok("the token is valid until %s (%s left)", ti.Expiry.Format(time.RFC3339), ti.Expiry.Sub(now).Round(time.Second))
	}
	if !ti.NotBefore.IsZero() && ti.NotBefore.After(now.Add(registryLeeway)) {
		d.problem("synchronise the token server's clock (NTP)", "the token is not valid before %s, %s from now: the token server's clock is ahead",
			ti.NotBefore.Format(time.RFC3339), ti.NotBefore.Sub(now).Round(time.Second))
	}
	if fetched && !ti.IssuedAt.IsZero() {
		if skew := ti.IssuedAt.Sub(now); skew > 30*time.Second || skew < -30*time.Second {
			d.problem("synchronise the token server's and this machine's clocks (NTP)",
				"the token was issued just now but says iat %s: the token server's clock is off by %s", ti.IssuedAt.Format(time.RFC3339), skew.Round(time.Second))
		}
	}
	if len(ti.X5C) > 0 {
		d.note("the token carries an x5c chain of %d certificate(s), leaf %s: registries verify it against their rootcertbundle, not by kid", len(ti.X5C), ti.X5C[0].Subject)
		if settings != nil {
			for _, k := range settings.PinnedKeys(regtrust.Header{Algorithm: ti.Algorithm, KeyID: ti.KeyID, X5C: ti.X5CCerts}) {
				d.problem("give the registry the x5c root certificate alone: drop auth.token.jwks and every non-root certificate from rootcertbundle "+
					"(portcullis registry-config writes just that in x5c mode), then restart the registry",
					"the registry pins a signing key by kid (%s, kid %s) although tokens carry an x5c chain: a token signed with that key "+
						"without a chain verifies for as long as the file stays, past every short-lived leaf", k.From, orNone(k.V3KeyID))
			}
		}
	}
	d.checkGranted(ti, scopes)
	if settings == nil {
		d.note("give -registry-config FILE (the registry's config) to check its trust files against the token's key")
	}
}

// checkGranted compares the scopes asked for with the token's access claim.
func (d *doctorCmd) checkGranted(ti *regclient.TokenInfo, scopes []string) {
	for _, raw := range scopes {
		want, err := scope.Parse(raw)
		if err != nil {
			continue // checked with the flags
		}
		var got []string
		for _, a := range ti.Access {
			if a.Type == want.Type && a.Name == want.Name {
				got = append(got, a.Actions...)
			}
		}
		var missing []string
		for _, act := range want.Actions {
			if !slices.Contains(got, act) {
				missing = append(missing, act)
			}
		}
		switch {
		case len(missing) == 0:
			d.ok("%s is granted", raw)
		case want.Type == "registry" && want.Name == "catalog":
			d.problem("the catalog needs registry:catalog:* granted by the policy (the default policy grants it to the admins group only); "+
				"check with `portcullis policy eval` or the authz policy",
				"asked for %s, the token grants %s: listing the catalog will fail", raw, orNothing(got))
		default:
			d.problem(fmt.Sprintf("the policy does not give %q %s on %s: change the authz policy or ask for less", ti.Subject, strings.Join(missing, ","), want.Name),
				"asked for %s, the token grants %s", raw, orNothing(got))
		}
	}
}

func orNothing(actions []string) string {
	if len(actions) == 0 {
		return "nothing"
	}
	return strings.Join(actions, ",")
}

// checkWithRegistry shows the token to the registry and, when it refuses, says which of the
// trust checks explains it.
func (d *doctorCmd) checkWithRegistry(ctx context.Context, base, raw string, ti *regclient.TokenInfo, settings *regtrust.Settings, scopes []string) {
	var verdicts []regtrust.Verdict
	if settings != nil && ti != nil && (len(settings.Certs) > 0 || settings.KeySet != nil) {
		verdicts = settings.Check(regtrust.Header{Algorithm: ti.Algorithm, KeyID: ti.KeyID, X5C: ti.X5CCerts})
	}
	status, wa, err := d.bearerGET(ctx, base+"/v2/", raw)
	if err != nil {
		d.problem("", "showing the token to the registry failed: %v", err)
		return
	}
	if status == http.StatusOK {
		d.ok("the registry accepts the token (GET /v2/ with it answered 200)")
		for _, v := range verdicts {
			if v.Trusted {
				d.ok("a %s registry with this config trusts the key: %s", v.Major, v.Via)
			} else {
				d.note("a %s registry with this config would refuse the token: %s", v.Major, v.Why)
			}
		}
		d.tryScopes(ctx, base, raw, ti, scopes)
		return
	}
	reason := ""
	if chs, err := regclient.ParseChallenges(wa); err == nil && len(chs) > 0 && chs[0].Params["error"] != "" {
		reason = " (" + chs[0].Params["error"] + ")"
	}
	d.problem("", "the registry refuses the token: GET /v2/ with it answered %d%s", status, reason)
	if len(verdicts) == 0 {
		if settings == nil {
			d.note("run again with -registry-config FILE to find out why; the registry's log names the reason (e.g. \"token signed by untrusted key with ID\", \"token from untrusted issuer\")")
		}
		return
	}
	anyTrusts := slices.ContainsFunc(verdicts, func(v regtrust.Verdict) bool { return v.Trusted })
	for _, v := range verdicts {
		switch {
		case v.Trusted:
			d.note("a %s registry with this config would trust the key (%s): if this registry is %s, the refusal comes from another check above", v.Major, v.Via, v.Major)
		case anyTrusts && d.tokenProblems > 0:
			// The token's own problems explain the refusal; the key is only a problem if
			// the registry is of the other major, which the doctor cannot tell.
			d.note("if this registry is %s, it would refuse the key as well: %s (fix: %s)", v.Major, v.Why, v.Fix)
		default:
			d.problem(v.Fix, "if this registry is %s: %s", v.Major, v.Why)
		}
	}
}

// tryScopes asks the registry for what each granted repository scope allows to read.
func (d *doctorCmd) tryScopes(ctx context.Context, base, raw string, ti *regclient.TokenInfo, scopes []string) {
	if ti == nil {
		return
	}
	for _, s := range scopes {
		sc, err := scope.Parse(s)
		if err != nil || sc.Type != "repository" || !slices.Contains(sc.Actions, "pull") {
			continue
		}
		granted := false
		for _, a := range ti.Access {
			granted = granted || (a.Type == "repository" && a.Name == sc.Name && slices.Contains(a.Actions, "pull"))
		}
		if !granted {
			continue
		}
		status, _, err := d.bearerGET(ctx, base+"/v2/"+sc.Name+"/tags/list", raw)
		switch {
		case err != nil:
			d.problem("", "GET /v2/%s/tags/list: %v", sc.Name, err)
		case status == http.StatusOK || status == http.StatusNotFound:
			d.ok("the registry lets the token read %s (tags/list answered %d)", sc.Name, status)
		default:
			d.problem("check the registry's logs", "the registry refuses to let the token read %s: tags/list answered %d", sc.Name, status)
		}
	}
}

func (d *doctorCmd) bearerGET(ctx context.Context, target, raw string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := regclient.KeepCredentials(d.http).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
