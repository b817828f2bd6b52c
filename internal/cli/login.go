package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

const loginUsage = `usage: portcullis login [-docker-config DIR] [-insecure-realm] [-no-browser] [-timeout D] REGISTRY

Signs in to REGISTRY (its host, as for docker login: localhost:5000, registry.example.com)
in a browser, with the OAuth 2.0 Device Authorization Grant (RFC 8628): no password is typed
here. The registry's challenge names its realm, the realm's metadata
(/.well-known/oauth-authorization-server) the device authorization and token endpoints.
portcullis login prints a URL and a code, opens the browser when it can, and waits while you
approve the request there (signed in to your company's IdP or with your password).

The session it gets is written to docker's config as REGISTRY's identity token, exactly as
docker login writes one: config.json's auths, or the credential helper docker uses for
REGISTRY (credsStore, credHelpers). docker, containerd and portcullis logout then use it.

Like docker, it talks plain http to localhost and 127.0.0.1 registries and https to the rest
(give http:// or https:// to choose). A token server on plain http is refused unless it is on
this machine (loopback) or -insecure-realm is given: the session's token would cross the
network in clear.
`

// loginClientID is the client_id the device flow is started with; the approval page shows it.
const loginClientID = "portcullis-cli"

// slowDownStep is what RFC 8628 §3.5 has a client add to its interval on slow_down.
const slowDownStep = 5 * time.Second

// loginCmd is `portcullis login` with what it reads from outside the flags injected.
type loginCmd struct {
	stdout, stderr io.Writer
	// http, when set, replaces the client built from -timeout.
	http *http.Client
	// open opens a URL in the person's browser; nil: xdg-open, open or rundll32.
	open func(ctx context.Context, url string) error
	// sleep waits d, or until ctx ends (its error then); nil: a timer.
	sleep func(ctx context.Context, d time.Duration) error
	// getenv and goos decide whether there is a display to open a browser on; nil and "":
	// the process's.
	getenv func(string) string
	goos   string
}

func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The wait is long: Ctrl-C ends it with a message rather than mid-line.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return (&loginCmd{stdout: stdout, stderr: stderr}).exec(ctx, args)
}

func (c *loginCmd) exec(ctx context.Context, args []string) error {
	rf := newRegistryFlags("portcullis login", loginUsage, c.stderr, 10*time.Minute, "how long to wait, all in all, for the sign-in to be approved")
	insecureRealm := rf.fs.Bool("insecure-realm", false, "use a token server on plain http off this machine (the session's token crosses the network in clear; for a lab only)")
	noBrowser := rf.fs.Bool("no-browser", false, "do not open a browser: only print the URL and the code")
	host, base, cfg, err := rf.parse(ctx, args, "log in to")
	if err != nil {
		return err
	}
	timeout := rf.timeout
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	client := &regclient.Client{HTTP: hc, UserAgent: "portcullis-login", ClientID: loginClientID, InsecureRealm: *insecureRealm}

	ep, err := c.endpoints(ctx, client, base, *insecureRealm)
	if err != nil {
		return err
	}
	da, err := client.StartDevice(ctx, ep.device, ep.service, nil)
	if err != nil {
		return fmt.Errorf("starting the sign-in: %w", err)
	}
	c.prompt(ctx, da, *noBrowser)
	res, err := c.poll(ctx, client, ep.token, da, *timeout)
	if err != nil {
		return err
	}
	if res.RefreshToken == "" {
		return fmt.Errorf("%s approved the sign-in but gave no refresh token: nothing to keep", terminalSafe(ep.token))
	}
	// The wait may have used up the deadline; saving is quick and must not be cut short.
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelSave()
	where, err := saveIdentityToken(saveCtx, cfg, host, tokenSubject(res.Token), res.RefreshToken)
	if err != nil {
		// Nobody will hold this session's token: end it rather than leave it live.
		if ep.revoke != "" {
			_ = client.Revoke(saveCtx, ep.revoke, res.RefreshToken, "refresh_token")
		}
		return fmt.Errorf("signed in, but could not save the session (it was ended): %w", err)
	}
	fmt.Fprintf(c.stderr, "the session is saved in %s\n", where)
	_, err = fmt.Fprintln(c.stdout, "Login Succeeded")
	return err
}

// loginEndpoints are where the device flow runs, from the registry's realm.
type loginEndpoints struct {
	service               string
	device, token, revoke string
}

// endpoints follows the registry's challenge to its realm and reads the realm's metadata.
// A plain-http realm or endpoint is refused unless it is on this machine or insecureRealm.
func (c *loginCmd) endpoints(ctx context.Context, client *regclient.Client, base string, insecureRealm bool) (loginEndpoints, error) {
	chs, err := client.Ping(ctx, base)
	if err != nil {
		if regclient.IsPlainHTTP(err) {
			return loginEndpoints{}, fmt.Errorf("%w: give http://%s", err, strings.TrimPrefix(base, "https://"))
		}
		return loginEndpoints{}, err
	}
	if chs == nil {
		return loginEndpoints{}, fmt.Errorf("%s/v2/ answered 200 without credentials: it needs no login", base)
	}
	ch := regclient.PreferredChallenge(chs)
	if ch.Scheme != "bearer" {
		return loginEndpoints{}, fmt.Errorf("the registry asks for %q authentication, not a token server's: use docker login", ch.Scheme)
	}
	realm := ch.Realm()
	if ch.Service() == "" {
		return loginEndpoints{}, errors.New("the registry's Bearer challenge names no service")
	}
	if err := regclient.CheckRealm(ch); err != nil && !insecureRealm {
		return loginEndpoints{}, fmt.Errorf("%w (-insecure-realm uses it anyway)", err)
	}
	if err := c.checkPlain("realm", realm, insecureRealm); err != nil {
		return loginEndpoints{}, err
	}
	md, err := client.AuthServerMetadata(ctx, realm)
	var se *regclient.StatusError
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return loginEndpoints{}, fmt.Errorf("the token server at %s publishes no metadata (%s answered 404): it does not offer a browser sign-in; use docker login",
			terminalSafe(md.Origin), terminalSafe(md.URL))
	case err != nil:
		return loginEndpoints{}, err
	case md.DeviceAuthorizationEndpoint == "":
		return loginEndpoints{}, fmt.Errorf("the token server at %s does not offer a browser sign-in (its metadata names no device_authorization_endpoint): use docker login",
			terminalSafe(md.Origin))
	}
	ep := loginEndpoints{service: ch.Service(), device: md.DeviceAuthorizationEndpoint, token: md.TokenEndpoint, revoke: md.RevocationEndpoint}
	if ep.token == "" {
		ep.token = realm // RFC 8414 requires it; Portcullis's realm is its token endpoint
	}
	for _, e := range []struct{ what, u string }{{"device authorization endpoint", ep.device}, {"token endpoint", ep.token}, {"revocation endpoint", ep.revoke}} {
		if e.u == "" {
			continue
		}
		if err := c.checkPlain(e.what, e.u, insecureRealm); err != nil {
			return loginEndpoints{}, err
		}
	}
	return ep, nil
}

// checkPlain refuses a plain-http URL off this machine: the session's token would come back
// through it in clear. insecureRealm allows it, with a warning.
func (c *loginCmd) checkPlain(what, raw string, insecureRealm bool) error {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") || loopback.Host(u.Hostname()) {
		return nil // not http: https, or an error the request itself reports
	}
	if !insecureRealm {
		return fmt.Errorf("%w: the %s %s is plain http off this machine; the session's token would cross the network in clear, so nothing was sent (-insecure-realm uses it anyway)",
			regclient.ErrInsecureRealm, what, terminalSafe(raw))
	}
	fmt.Fprintf(c.stderr, "WARNING: -insecure-realm: using the plain-http %s %s; the session's token crosses the network in clear\n", what, terminalSafe(raw))
	return nil
}

// prompt tells the person where to approve the sign-in, and opens the browser when it can.
func (c *loginCmd) prompt(ctx context.Context, da *regclient.DeviceAuthorization, noBrowser bool) {
	fmt.Fprintf(c.stderr, "To sign in, open %s and enter the code %s\n", terminalSafe(da.VerificationURI), terminalSafe(da.UserCode))
	target := da.VerificationURI
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.stderr, "or open %s\n", terminalSafe(da.VerificationURIComplete))
		target = da.VerificationURIComplete
	}
	// The server chose the URL: a browser gets http(s) only, never a file or a command line.
	if u, err := url.Parse(target); noBrowser || err != nil || (u.Scheme != "https" && u.Scheme != "http") || !c.hasDisplay() {
		return
	}
	open := c.open
	if open == nil {
		open = openBrowser
	}
	if err := open(ctx, target); err != nil {
		fmt.Fprintf(c.stderr, "(could not open a browser: %v)\n", err)
	}
}

// hasDisplay says whether a browser could show up: on Linux and the BSDs only with an X11 or
// Wayland display (over ssh there is none); macOS and Windows always have one.
func (c *loginCmd) hasDisplay() bool {
	getenv, goos := c.getenv, c.goos
	if getenv == nil {
		getenv = os.Getenv
	}
	if goos == "" {
		goos = runtime.GOOS
	}
	switch goos {
	case "darwin", "windows":
		return true
	}
	return getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != ""
}

// openBrowser starts the platform's URL opener and does not wait for the browser.
func openBrowser(_ context.Context, target string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", target)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", target)
	default:
		cmd = exec.Command("xdg-open", target)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; its exit status says nothing we act on
	return nil
}

// poll asks the token endpoint every interval until the sign-in is approved, denied or
// expired (RFC 8628 §3.5), or ctx ends.
func (c *loginCmd) poll(ctx context.Context, client *regclient.Client, tokenEndpoint string, da *regclient.DeviceAuthorization, timeout time.Duration) (*regclient.Result, error) {
	sleep := c.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	for {
		if err := sleep(ctx, interval); err != nil {
			return nil, waitEnded(ctx, timeout)
		}
		res, err := client.PollDevice(ctx, tokenEndpoint, da.DeviceCode)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, waitEnded(ctx, timeout)
		}
		var se *regclient.StatusError
		if !errors.As(err, &se) {
			return nil, fmt.Errorf("waiting for the sign-in: %w", err)
		}
		switch {
		case se.Code == "authorization_pending":
		case se.Code == "slow_down":
			interval += slowDownStep
		case se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests:
			// The token server is briefly away or busy; the person may still be approving.
		case se.Code == "access_denied":
			return nil, errors.New("the sign-in was denied")
		case se.Code == "expired_token":
			return nil, errors.New("the code expired before the sign-in was approved: run portcullis login again")
		default:
			return nil, fmt.Errorf("waiting for the sign-in: %w", err)
		}
	}
}

// waitEnded says why the wait ended: the deadline, or an interrupt (Ctrl-C).
func waitEnded(ctx context.Context, timeout time.Duration) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return fmt.Errorf("the sign-in was not approved within %v (-timeout)", timeout)
	}
	return errors.New("interrupted: not signed in")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// saveIdentityToken keeps token as host's identity token where docker looks for it: the
// credential helper docker uses for host (with an empty auths entry marking the login, as
// docker writes), else config.json's auths. Other spellings of host's entry go: this login
// replaces them. It returns where the token went.
func saveIdentityToken(ctx context.Context, cfg *regclient.DockerConfigFile, host, username, token string) (string, error) {
	key := helperServerURL(host)
	cfg.Remove(host)
	where := cfg.Path
	if helper := cfg.CredentialHelper(host); helper != "" {
		if err := regclient.HelperStore(ctx, helper, key, regclient.AuthEntry{IdentityToken: token}); err != nil {
			return "", err
		}
		cfg.SetIdentityToken(key, "", "")
		where = "docker-credential-" + helper
	} else {
		cfg.SetIdentityToken(key, username, token)
	}
	if err := cfg.Save(); err != nil {
		return "", fmt.Errorf("writing %s: %w", cfg.Path, err)
	}
	return where, nil
}

// tokenSubject is the sub claim of the registry token the approval gave (the person's subject),
// read without verifying it: it is only the user name written beside the identity token, as
// docker writes the one it logged in with. "" when the token is not a JWT with a sub.
func tokenSubject(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil || strings.ContainsAny(c.Sub, ":\x00") {
		return ""
	}
	return c.Sub
}
