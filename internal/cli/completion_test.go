package cli

import (
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// completion is one answer of cobra's hidden __complete command: the candidates (without their
// descriptions) and the directive.
type completion struct {
	names     []string
	descs     map[string]string
	directive string
}

func completeTest(t *testing.T, args ...string) completion {
	t.Helper()
	r := runCLITest(t, "", append([]string{cobra.ShellCompRequestCmd}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	// Cobra says the directive on stderr; anything else there is the command talking while
	// it should only have handed over its flags.
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "Completion ended with directive:") {
			t.Errorf("__complete %q printed on stderr:\n%s", args, r.stderr)
			break
		}
	}
	c := completion{descs: map[string]string{}}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if strings.HasPrefix(l, ":") {
			c.directive = l
			continue
		}
		name, desc, _ := strings.Cut(l, "\t")
		c.names = append(c.names, name)
		c.descs[name] = desc
	}
	return c
}

// flagCmds are the commands of the tree that parse their own flags, by their words after
// the root's name.
func flagCmds(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.DisableFlagParsing {
				out = append(out, strings.Fields(strings.TrimPrefix(s.CommandPath(), "portcullis ")))
			}
			walk(s)
		}
	}
	walk(newRootCmd(strings.NewReader(""), io.Discard, io.Discard))
	if len(out) < 10 {
		t.Fatalf("found %d commands with their own flags, %q: the walk is broken", len(out), out)
	}
	return out
}

// defaultsLine is a flag's line in flag.PrintDefaults: two spaces, -name, a value name or
// the usage after a tab.
var defaultsLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9._-]*)(?: [A-Za-z]+)?(?:\t|\n    \t)`)

// TestCompleteFlagCmds: for every command that parses its own flags, completing a word that
// starts with - offers exactly the flags its -h lists (each with a description), with -- too;
// another word gets the shell's file completion.
func TestCompleteFlagCmds(t *testing.T) {
	t.Parallel()
	for _, path := range flagCmds(t) {
		t.Run(strings.Join(path, " "), func(t *testing.T) {
			t.Parallel()
			help := runCLITest(t, "", append(slices.Clone(path), "-h")...)
			var want []string
			for _, m := range defaultsLine.FindAllStringSubmatch(help.stderr, -1) {
				want = append(want, "-"+m[1])
			}
			if help.code != 0 || len(want) == 0 {
				t.Fatalf("-h: exit %d, no flags listed:\n%s", help.code, help.stderr)
			}
			slices.Sort(want)

			c := completeTest(t, append(slices.Clone(path), "-")...)
			got := slices.Sorted(slices.Values(c.names))
			if !slices.Equal(got, want) {
				t.Errorf("completing -: %q\n-h lists: %q", got, want)
			}
			if c.directive != ":4" { // ShellCompDirectiveNoFileComp
				t.Errorf("completing -: directive %q, want :4 (no files)", c.directive)
			}
			for _, n := range c.names {
				if c.descs[n] == "" {
					t.Errorf("%s has no description", n)
				}
			}

			c = completeTest(t, append(slices.Clone(path), "--")...)
			for i, n := range want {
				if i >= len(c.names) || c.names[i] != "-"+n {
					t.Errorf("completing --: %q, want each of %q with two dashes", c.names, want)
					break
				}
			}

			// After a flag, a value: the shell completes files.
			c = completeTest(t, append(slices.Clone(path), want[0], "")...)
			if len(c.names) != 0 || c.directive != ":0" {
				t.Errorf("completing a value: %q %s, want nothing and :0 (files)", c.names, c.directive)
			}
		})
	}
}

// TestCompleteFlags: what a user sees for a few commands.
func TestCompleteFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want []string // exactly, in order
		desc string   // the first candidate's description holds it
		// files: the word is a value or an argument, completed by the shell as a file name
		// (directive :0); otherwise a flag, or nothing (:4).
		files bool
	}{
		{[]string{"token", "-ex"}, []string{"-exchange"}, "OAuth 2.0 token exchange (RFC 8693)", false},
		{[]string{"token", "--ex"}, []string{"--exchange"}, "read from FILE (- for standard input)", false}, // no value-name quotes
		{[]string{"token", "-registry", "https://r", "-u"}, []string{"-u"}, "user name", false},
		{[]string{"sessions", "revoke", "-"}, []string{"-addr", "-admin-token-file", "-id", "-o", "-tls-ca", "-tls-cert", "-tls-key", "-tls-server-name", "-user"}, "admin gRPC address", false},
		{[]string{"robots", "list", "-n"}, nil, "", false}, // -name is create's and revoke's
		{[]string{"robots", "create", "-n"}, []string{"-name"}, "its subject is robot:NAME", false},
		{[]string{"policy", "eval", "-s"}, []string{"-scope", "-service"}, "a requested scope", false},
		{[]string{"doctor", "-tok"}, []string{"-token"}, "instead of fetching one", false},
		{[]string{"keys", "certify", "-vault-role"}, []string{"-vault-role", "-vault-role-id"}, "Kubernetes auth role", false},
		{[]string{"token", "-nope"}, nil, "", false},
		{[]string{"token", "-exchange", "-"}, nil, "", true},                                    // the value: - is standard input
		{[]string{"token", "--scope", "-"}, nil, "", true},                                      // the same with two dashes
		{[]string{"token", "-decode", "-dec"}, []string{"-decode"}, "header and claims", false}, // a boolean takes no value
		{[]string{"policy", "test", "--", "-"}, nil, "", true},                                  // no flags after --
	}
	for _, tc := range cases {
		c := completeTest(t, tc.args...)
		if !slices.Equal(c.names, tc.want) {
			t.Errorf("__complete %q: %q, want %q", tc.args, c.names, tc.want)
			continue
		}
		if want := map[bool]string{true: ":0", false: ":4"}[tc.files]; c.directive != want {
			t.Errorf("__complete %q: directive %s, want %s", tc.args, c.directive, want)
		}
		if len(tc.want) > 0 && !strings.Contains(c.descs[tc.want[0]], tc.desc) {
			t.Errorf("__complete %q: %s's description %q lacks %q", tc.args, tc.want[0], c.descs[tc.want[0]], tc.desc)
		}
	}
}
