package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

const logoutUsage = `usage: portcullis logout [-docker-config DIR] [-force] [-insecure-realm] [-timeout D] REGISTRY

Logs out of REGISTRY (its host, as for docker logout: localhost:5000, registry.example.com)
and ends the session behind it. When docker's config (or its credential helper) holds an
identity token for REGISTRY — a refresh token from docker login or portcullis login — the
session ends at the token server first: the registry's challenge names the realm, the realm's
metadata (/.well-known/oauth-authorization-server) its RFC 7009 revocation endpoint. Then
the entry is removed from config.json (every other key and entry kept) and, when a
credential helper holds it (credsStore, credHelpers), erased there.

Like docker, it talks plain http to localhost and 127.0.0.1 registries and https to the rest
(give http:// or https:// to choose). A password entry is removed with nothing to end: its
password stays valid.

If the session cannot be ended (the token server is down, answers 5xx, has no revocation
endpoint) the entry is kept and the exit status is 1: the session may still be live, and
whoever holds the token can still use it. -force removes the entry anyway.
`

// logoutCmd is `portcullis logout` with what it reads from outside the flags injected.
type logoutCmd struct {
	stdout, stderr io.Writer
	// http, when set, replaces the client built from -timeout.
	http *http.Client
}

func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return (&logoutCmd{stdout: stdout, stderr: stderr}).exec(ctx, args)
}

func (c *logoutCmd) exec(ctx context.Context, args []string) error {
	rf := newRegistryFlags("portcullis logout", logoutUsage, c.stderr, 30*time.Second, "how long the token server may take")
	force := rf.fs.Bool("force", false, "remove the local entry even if the session could not be ended (it may stay live until it expires)")
	insecureRealm := rf.fs.Bool("insecure-realm", false, "follow a plain-http realm named by an https registry (sends the refresh token in clear; for a lab only)")
	host, base, cfg, err := rf.parse(ctx, args, "log out of")
	if err != nil {
		return err
	}
	timeout := rf.timeout
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	// Where the credentials are: the helper docker would ask, and the file's own entries (a
	// helper's login leaves an empty one there; an older login may have left a full one).
	helper := cfg.CredentialHelper(host)
	var fromHelper *regclient.AuthEntry
	if helper != "" {
		e, err := regclient.HelperGet(ctx, helper, helperServerURL(host))
		switch {
		case errors.Is(err, regclient.ErrHelperNotFound):
		case err != nil:
			return fmt.Errorf("reading %s's credentials from the credential helper: %w", host, err)
		default:
			fromHelper = &e
		}
	}
	entries, err := cfg.Auths(host)
	if err != nil {
		return err
	}
	var tokens []string // identity tokens to revoke, each once
	if fromHelper != nil && fromHelper.IdentityToken != "" {
		tokens = append(tokens, fromHelper.IdentityToken)
	}
	for _, e := range entries {
		if e.IdentityToken != "" && !slices.Contains(tokens, e.IdentityToken) {
			tokens = append(tokens, e.IdentityToken)
		}
	}
	if fromHelper == nil && len(entries) == 0 {
		fmt.Fprintf(c.stdout, "not logged in to %s (%s holds nothing for it)\n", host, cfg.Path)
		return nil
	}

	var ended []string
	if len(tokens) > 0 {
		hc := c.http
		if hc == nil {
			hc = &http.Client{Timeout: *timeout}
		}
		client := &regclient.Client{HTTP: hc, UserAgent: "portcullis-logout", ClientID: "portcullis-logout", InsecureRealm: *insecureRealm}
		where, err := c.endSessions(ctx, client, base, tokens, *insecureRealm)
		switch {
		case err != nil && !*force:
			return fmt.Errorf("%s: could not end the session: %w\nthe session may still be live: the entry is kept (-force removes it anyway)", host, err)
		case err != nil:
			fmt.Fprintf(c.stderr, "WARNING: could not end the session: %v\nthe session may still be live until it expires; removing the entry anyway (-force)\n", err)
		default:
			ended = append(ended, "session ended at "+where)
		}
	} else {
		ended = append(ended, "no session to end (a password entry: the password itself stays valid)")
	}

	var removed []string
	if fromHelper != nil {
		if err := regclient.HelperErase(ctx, helper, helperServerURL(host)); err != nil {
			return fmt.Errorf("%s; erasing %s from the credential helper %s: %w", strings.Join(ended, "; "), host, helper, err)
		}
		removed = append(removed, "erased "+host+" from docker-credential-"+helper)
	}
	if keys := cfg.Remove(host); len(keys) > 0 {
		if err := cfg.Save(); err != nil {
			return fmt.Errorf("%s; writing %s: %w", strings.Join(ended, "; "), cfg.Path, err)
		}
		removed = append(removed, "removed "+host+" from "+cfg.Path)
	}
	_, err = fmt.Fprintln(c.stdout, strings.Join(append(ended, removed...), "; "))
	return err
}

// endSessions follows the registry's challenge to its realm and revokes each token at the
// realm's revocation endpoint; it returns the endpoint.
func (c *logoutCmd) endSessions(ctx context.Context, client *regclient.Client, base string, tokens []string, insecureRealm bool) (string, error) {
	chs, err := client.Ping(ctx, base)
	if err != nil {
		if regclient.IsPlainHTTP(err) {
			return "", fmt.Errorf("%w: give http://%s", err, strings.TrimPrefix(base, "https://"))
		}
		return "", err
	}
	if chs == nil {
		return "", fmt.Errorf("%s/v2/ answered 200 without credentials: no token server to end the session at", base)
	}
	ch := regclient.PreferredChallenge(chs)
	if ch.Scheme != "bearer" {
		return "", fmt.Errorf("the registry asks for %q authentication: no token server to end the session at", ch.Scheme)
	}
	if err := regclient.CheckRealm(ch); err != nil {
		if !insecureRealm {
			return "", fmt.Errorf("%w (-insecure-realm sends it anyway)", err)
		}
		fmt.Fprintf(c.stderr, "WARNING: -insecure-realm: following the plain-http realm %s of an https registry; the refresh token crosses the network in clear\n", terminalSafe(ch.Realm()))
	}
	rev, err := client.RevocationEndpoint(ctx, ch.Realm())
	if err != nil {
		return "", err
	}
	if rev.Guessed != "" {
		fmt.Fprintln(c.stderr, terminalSafe(rev.Guessed))
	}
	for _, tok := range tokens {
		if err := client.Revoke(ctx, rev.Endpoint, tok, "refresh_token"); err != nil {
			return "", err
		}
	}
	return terminalSafe(rev.Endpoint), nil
}
