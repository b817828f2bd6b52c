package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

const tokenUsage = `usage: portcullis token -registry URL [-scope SCOPE]... [-u USER (-p PASS | --password-stdin)] [-identity-token TOKEN] [-offline] [-decode]`

// runToken follows any registry's authentication challenge and prints the token it gets
// (stdout: the token only; what happened goes to stderr).
func runToken(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registry := fs.String("registry", "", "the registry's URL (https://registry.example.com)")
	var scopes multiFlag
	fs.Var(&scopes, "scope", "a scope to ask for, e.g. repository:team/app:pull,push (repeat for several)")
	user := fs.String("u", "", "user name")
	pass := fs.String("p", "", "password (prefer --password-stdin: a flag shows in the process list)")
	passStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	identity := fs.String("identity-token", "", "a refresh token (docker's identitytoken): use the OAuth2 refresh grant")
	offline := fs.Bool("offline", false, "ask for a refresh token too (docker login's offline_token)")
	decode := fs.Bool("decode", false, "also print the token's header and claims (not verified)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the whole exchange may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *registry == "" || fs.NArg() > 0 {
		return errors.New(tokenUsage)
	}
	if !strings.Contains(*registry, "://") {
		*registry = "https://" + *registry
	}
	if *passStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password: %w", err)
		}
		*pass = strings.TrimRight(line, "\r\n")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &regclient.Client{HTTP: &http.Client{Timeout: *timeout}}
	r, err := c.Token(ctx, *registry, scopes, regclient.Credentials{Username: *user, Password: *pass, IdentityToken: *identity}, *offline)
	if err != nil {
		return err
	}
	switch r.Scheme {
	case "":
		fmt.Fprintln(stderr, "the registry needs no authentication: no token to fetch")
		return nil
	case "basic":
		fmt.Fprintf(stderr, "the registry uses Basic authentication (realm %q, e.g. Amazon ECR): no token to fetch; the credentials work\n", r.Realm)
		return nil
	}
	fmt.Fprintf(stderr, "Bearer realm %s, service %q: token by %s, expires in %ds\n", r.Realm, r.Service, r.Method, r.ExpiresIn)
	if r.RefreshToken != "" {
		fmt.Fprintf(stderr, "refresh token (keep it secret; use it with -identity-token): %s\n", r.RefreshToken)
	}
	fmt.Fprintln(stdout, r.Token)
	if *decode {
		return regclient.Describe(stderr, r.Token, time.Now())
	}
	return nil
}
