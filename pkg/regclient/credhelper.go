package regclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrHelperNotFound: the credential helper holds nothing for the server URL.
var ErrHelperNotFound = errors.New("the credential helper holds no credentials for it")

// identityTokenUser is the Username under which credential helpers store an identity token.
const identityTokenUser = "<token>"

// HelperGet asks docker's credential helper name (the program docker-credential-<name> on
// $PATH) for serverURL's credentials: `get` with the URL on standard input, JSON
// {ServerURL, Username, Secret} on standard output. An identity token is stored with the
// Username "<token>". ErrHelperNotFound when it holds none.
func HelperGet(ctx context.Context, name, serverURL string) (AuthEntry, error) {
	out, err := runHelper(ctx, name, "get", serverURL)
	if err != nil {
		return AuthEntry{}, err
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal(out, &c); err != nil {
		return AuthEntry{}, fmt.Errorf("docker-credential-%s get: the answer is not JSON: %v", name, err)
	}
	e := AuthEntry{Key: serverURL, Username: c.Username, Password: c.Secret}
	if c.Username == identityTokenUser {
		e.Username, e.Password, e.IdentityToken = "", "", c.Secret
	}
	return e, nil
}

// HelperErase asks the helper to forget serverURL's credentials (`erase`); one that holds
// none is no error.
func HelperErase(ctx context.Context, name, serverURL string) error {
	_, err := runHelper(ctx, name, "erase", serverURL)
	if errors.Is(err, ErrHelperNotFound) {
		return nil
	}
	return err
}

// HelperStore asks the helper to keep e as serverURL's credentials (`store`), as docker
// login does: an identity token under the Username "<token>", else the user and password.
func HelperStore(ctx context.Context, name, serverURL string, e AuthEntry) error {
	c := struct{ ServerURL, Username, Secret string }{ServerURL: serverURL, Username: e.Username, Secret: e.Password}
	if e.IdentityToken != "" {
		c.Username, c.Secret = identityTokenUser, e.IdentityToken
	}
	in, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = runHelperInput(ctx, name, "store", serverURL, string(in))
	return err
}

func runHelper(ctx context.Context, name, verb, serverURL string) ([]byte, error) {
	return runHelperInput(ctx, name, verb, serverURL, serverURL)
}

// runHelperInput runs the helper's verb with stdin (a secret for store: never in an error).
func runHelperInput(ctx context.Context, name, verb, serverURL, stdin string) ([]byte, error) {
	prog := "docker-credential-" + name
	cmd := exec.CommandContext(ctx, prog, verb)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// docker-credential-helpers' protocol: "not found" is said on standard output, exit 1.
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return nil, fmt.Errorf("%s %s %s: %w", prog, verb, serverURL, ErrHelperNotFound)
		}
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", prog, verb, err, printable(msg))
		}
		return nil, fmt.Errorf("%s %s: %w", prog, verb, err)
	}
	return stdout.Bytes(), nil
}
