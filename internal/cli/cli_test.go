package cli

import (
	"bytes"
	"strings"
	"testing"
)

// cliRun is one run of the command line through execute, as main runs it.
type cliRun struct {
	code           int
	stdout, stderr string
}

func runCLITest(t *testing.T, stdin string, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return cliRun{code, out.String(), errb.String()}
}

// TestCLI: every level has help (exit 0) listing its commands and flags, a mistyped command
// or a stray argument is a usage error (exit 2) naming the closest command, never a
// fallback to running the server, and the server's flags keep both spellings.
func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dev := []string{"-verify-config", "-data-dir", dir}
	cases := []struct {
		args []string
		code int
		want []string // in stdout or stderr
	}{
		// Help at every level.
		{[]string{"help"}, 0, []string{"Available Commands", "sessions", "robots", "completion", "--target", "--verify-config"}},
		{[]string{"-h"}, 0, []string{"Available Commands", "serve", "--gateway.listen"}},
		{[]string{"--help"}, 0, []string{"Available Commands", "doctor"}},
		{[]string{"-help"}, 0, []string{"Available Commands"}},
		{[]string{"serve", "-h"}, 0, []string{"--data-dir", "--target"}},
		{[]string{"help", "serve"}, 0, []string{"--config.expand-env"}},
		{[]string{"keys", "-h"}, 0, []string{"list", "rotate", "certify"}},
		{[]string{"keys", "--help"}, 0, []string{"rotate"}},
		{[]string{"help", "keys"}, 0, []string{"certify"}},
		{[]string{"keys", "list", "-h"}, 0, []string{"-admin-token-file", "-tls-cert"}},
		{[]string{"keys", "rotate", "--help"}, 0, []string{"-addr"}},
		{[]string{"keys", "certify", "-h"}, 0, []string{"-vault-auth-method"}},
		{[]string{"help", "keys", "list"}, 0, []string{"List the signing key's versions", "-admin-token-file"}},
		{[]string{"sessions", "-h"}, 0, []string{"list", "revoke"}},
		{[]string{"sessions", "list", "-h"}, 0, []string{"-user", "-o"}},
		{[]string{"sessions", "revoke", "-h"}, 0, []string{"-id"}},
		{[]string{"help", "sessions", "revoke"}, 0, []string{"-id"}},
		{[]string{"robots", "-h"}, 0, []string{"create", "list", "revoke"}},
		{[]string{"robots", "create", "-h"}, 0, []string{"-label", "-expires"}},
		{[]string{"robots", "list", "-h"}, 0, []string{"-admin-token-file"}},
		{[]string{"robots", "revoke", "-h"}, 0, []string{"-name"}},
		{[]string{"pats", "-h"}, 0, []string{"create", "list", "revoke"}},
		{[]string{"pats", "create", "-h"}, 0, []string{"-owner", "-expires", "-scope"}},
		{[]string{"pats", "revoke", "-h"}, 0, []string{"-id"}},
		{[]string{"policy", "-h"}, 0, []string{"test", "eval"}},
		{[]string{"policy", "test", "-h"}, 0, []string{"-v"}},
		{[]string{"policy", "eval", "-h"}, 0, []string{"-scope", "-anonymous"}},
		{[]string{"migrate", "-h"}, 0, []string{"docker-auth"}},
		{[]string{"migrate", "docker-auth", "-h"}, 0, []string{"-out"}},
		{[]string{"registry-config", "-h"}, 0, []string{"-realm", "-out"}},
		{[]string{"registry-config", "--help"}, 0, []string{"-realm"}},
		{[]string{"token", "-h"}, 0, []string{"-identity-token", "--password-stdin"}},
		{[]string{"doctor", "-h"}, 0, []string{"-registry-config"}},
		{[]string{"help", "doctor"}, 0, []string{"-registry-config"}},
		{[]string{"version", "-h"}, 0, []string{"Print the version"}},
		{[]string{"completion", "-h"}, 0, []string{"bash", "zsh", "fish"}},

		// Mistakes are usage errors naming the closest command.
		{[]string{"sesions", "list"}, 2, []string{`unknown command "sesions" for "portcullis"`, "Did you mean this?\n\tsessions"}},
		{[]string{"sesions", "list", "-user", "alice"}, 2, []string{`unknown command "sesions"`, "sessions"}},
		{[]string{"-data-dir", dir, "tokn"}, 2, []string{`unknown command "tokn"`, "token"}},
		{[]string{"help", "sesions"}, 2, []string{"Did you mean this?\n\tsessions"}},
		{[]string{"keys", "lst"}, 2, []string{`unknown command "lst" for "portcullis keys"`, "list"}},
		{[]string{"keys", "lst", "-addr", "x"}, 2, []string{`unknown command "lst"`}},
		{[]string{"keys"}, 2, []string{"give a subcommand: certify, list, rotate", "Run 'portcullis keys --help'"}},
		{[]string{"-target=all", "extra"}, 2, []string{`unknown command "extra"`}},
		{[]string{"serve", "extra"}, 2, []string{`unexpected argument "extra"`, "Run 'portcullis serve --help'"}},
		{[]string{"version", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{[]string{"-tagret=all"}, 2, []string{"unknown flag: --tagret"}},
		{[]string{"-target"}, 2, []string{"flag needs an argument"}},
		{[]string{"sessions", "list", "-nope"}, 2, []string{"flag provided but not defined: -nope"}},
		{[]string{"sessions", "list", "-addr", "127.0.0.1:1"}, 2, []string{"-admin-token-file is required"}},
		{[]string{"sessions", "revoke", "-admin-token-file", "/x"}, 2, []string{"give exactly one of -id or -user"}},
		{[]string{"robots", "create", "-admin-token-file", "/x"}, 2, []string{"-name is required"}},
		{[]string{"pats", "create", "-admin-token-file", "/x"}, 2, []string{"-owner, -name, -expires (positive) required"}},
		{[]string{"pats", "revoke", "-admin-token-file", "/x"}, 2, []string{"-id required"}},
		{[]string{"pats", "lst"}, 2, []string{"unknown command", "list"}},
		{[]string{"policy", "test"}, 2, []string{"give one policy directory"}},
		{[]string{"policy", "eval", "-dir", dir}, 2, []string{"give -user NAME or -anonymous"}},
		{[]string{"migrate", "docker-auth"}, 2, []string{"give -out DIR"}},
		{[]string{"keys", "certify"}, 2, []string{"usage: portcullis keys certify"}},
		{[]string{"token", "-registry", "https://x", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{[]string{"doctor", "-nope"}, 2, []string{"flag provided but not defined: -nope"}},

		// Failures are 1.
		{[]string{"-verify-config", "-config", dir + "/missing.yaml"}, 1, []string{"missing.yaml"}},
		{append([]string{"-log.level=loud"}, dev...), 1, []string{"log.level"}},
		{[]string{"sessions", "list", "-admin-token-file", dir + "/missing"}, 1, []string{"missing"}},

		// Every spelling of the server's flags the README, compose, Helm, e2e and the bench use.
		{dev, 0, []string{"configuration OK"}},
		{append([]string{"-target=all", "-gateway.listen=127.0.0.1:5001"}, dev...), 0, []string{"configuration OK"}},
		{[]string{"-target=all", "-data-dir=" + dir, "-verify-config", "-gateway.listen", "127.0.0.1:5001", "-log.level", "debug"}, 0, []string{"configuration OK"}},
		{[]string{"--target", "gateway", "--data-dir=" + dir, "--verify-config", "--config.expand-env", "--log.level=debug"}, 0, []string{"configuration OK"}},
		{[]string{"-verify-config=true", "-dev", "-data-dir", dir, "-gateway.listen=0.0.0.0:5001"}, 0, []string{"configuration OK"}},
		{[]string{"-internal-tls.cert-file", "/c.pem", "-internal-tls.key-file=/k.pem", "-cpuprofile=" + dir + "/cpu", "-verify-config", "-data-dir", dir}, 1, []string{"internal_tls"}},
		{append([]string{"serve", "-target=all"}, dev...), 0, []string{"configuration OK"}},
		{append(dev, "serve"), 0, []string{"configuration OK"}}, // the server's flags before its command

		// Version.
		{[]string{"version"}, 0, []string{"portcullis ", "\ncommit: ", "\ngo: go1."}},
		{[]string{"--version"}, 0, []string{"portcullis ", "\ncommit: ", "\ngo: go1."}},
		{[]string{"-version"}, 0, []string{"\ncommit: "}},

		// Completion.
		{[]string{"completion", "bash"}, 0, []string{"bash completion"}},
		{[]string{"completion", "zsh"}, 0, []string{"#compdef portcullis"}},
		{[]string{"completion", "fish"}, 0, []string{"complete -c portcullis"}},
		{[]string{"completion", "tcsh"}, 2, []string{"tcsh"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLITest(t, "", tc.args...)
			all := r.stdout + r.stderr
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
				}
			}
			if tc.code == 0 && strings.Contains(r.stderr, "portcullis:") {
				t.Errorf("exit 0 with an error:\n%s", r.stderr)
			}
		})
	}
}

// TestSecretFlagWarns: a password or refresh token given as a flag's value still works, with
// a warning that points at the form that keeps it out of the process list.
func TestSecretFlagWarns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"token", "-registry", "http://127.0.0.1:1", "-timeout", "2s", "-u", "alice", "-p", "s3cret"}, 1, "WARNING: -p puts the password in the process list and the shell's history: use --password-stdin"},
		{[]string{"token", "-registry", "http://127.0.0.1:1", "-timeout", "2s", "-identity-token", "rt"}, 1, "WARNING: -identity-token puts the refresh token in the process list and the shell's history: use -docker-config"},
		{[]string{"doctor", "-registry", "http://127.0.0.1:1", "-timeout", "2s", "-u", "alice", "-p", "s3cret"}, 1, "WARNING: -p puts the password"},
		{[]string{"doctor", "-registry", "http://127.0.0.1:1", "-timeout", "2s", "-identity-token", "rt"}, 1, "WARNING: -identity-token"},
	}
	for _, tc := range cases {
		r := runCLITest(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr lacks %q:\n%s", tc.args, r.code, tc.code, tc.want, r.stderr)
		}
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("%v: the warning echoes the secret:\n%s", tc.args, r.stderr)
		}
	}
	// The safe form has no warning.
	r := runCLITest(t, "s3cret\n", "token", "-registry", "http://127.0.0.1:1", "-timeout", "2s", "-u", "alice", "--password-stdin")
	if strings.Contains(r.stderr, "WARNING") {
		t.Errorf("--password-stdin warned:\n%s", r.stderr)
	}
}
