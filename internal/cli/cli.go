package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/buildinfo"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command line is a cobra tree (the library docker, kubectl, helm and OPA use): it gives
// every level help, `help` as a command, suggestions for a mistyped command and shell
// completion. The exit status follows one rule: 0 ok, 1 failure, 2 usage (a mistyped command,
// flag or argument); the doctor alone says 1 for "found a problem" and 2 for "could not run".
//
// Flags keep the spellings they always had: one dash or two (-config, --config), with =
// or a space before the value. The server's flags are cobra's (pflag) and normalizeArgs
// turns a single-dash long name into the double-dash one pflag parses; the other commands
// parse their own flags with the standard flag package, which reads both spellings.

// exitError ends a command with code. A nil err means the command has already said why.
type exitError struct {
	code int
	err  error
	// cmd is the command path whose --help a usage error points at.
	cmd string
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit status for err.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// usageError is exit 2: the command line itself is wrong.
func usageError(cmd *cobra.Command, err error) error {
	return &exitError{code: 2, err: err, cmd: cmd.CommandPath()}
}

// usagef is a usage error found by a command's own checks; cmd is its path
// ("portcullis sessions revoke").
func usagef(cmd, format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...), cmd: cmd}
}

// reported is exit code after the command printed its own report (failed policy tests, the
// token command's one line): nothing more is printed.
func reported(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// parseFlags parses a command's standard-library flags; a parse error is a usage error.
// flag.ErrHelp (-h) passes through: the flag set has printed its usage. Under a completion
// probe (see flagCmdFlags) it hands fs over instead and ends the command.
func parseFlags(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if err := probeFlags(ctx, fs); err != nil {
		return err
	}
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{code: 2, err: err, cmd: fs.Name()}
}

// Execute runs the command line and returns the exit status, printing what went wrong.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runCLI(ctx, args, stdin, stdout, stderr)
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.err == nil:
	case errors.As(err, &ee) && ee.cmd != "":
		fmt.Fprintf(stderr, "portcullis: %v\nRun '%s --help' for usage.\n", err, ee.cmd)
	default:
		fmt.Fprintln(stderr, "portcullis:", err)
	}
	return exitCode(err)
}

// run is execute for tests: the command's error (an *exitError for a status other than 1).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runCLI(ctx, args, os.Stdin, stdout, stderr)
}

func runCLI(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd(stdin, stdout, stderr)
	args, stray := normalizeArgs(root, args)
	if stray != "" {
		return unknownCommand(root, stray)
	}
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	return err
}

// newRootCmd is the command tree. `portcullis` with no command runs the server, as `serve`.
func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	// std runs a command's handler with the words cobra consumed (its verb) put back.
	std := func(run func(context.Context, []string, io.Writer, io.Writer) error, verb ...string) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			return run(ctx, append(slices.Clone(verb), args...), stdout, stderr)
		}
	}
	var rootServe, serve serveOptions
	root := &cobra.Command{
		Use:   "portcullis",
		Short: "Portcullis, the token server for container registries",
		Long: "Portcullis, the token server for container registries.\n\n" +
			"Without a command it runs the server (see `portcullis serve`): -target=all (the default) runs\n" +
			"every service in one process, gateway|authn|authz|signer one of them. Flags take one dash or\n" +
			"two (-config FILE, --config=FILE). Exit status: 0 ok, 1 failure, 2 usage.",
		Version:       buildinfo.Read().String(),
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rootServe.run(cmd.Context(), stdout, stderr)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	rootServe.register(root.Flags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	root.SetHelpCommand(helpCmd(root))

	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (what portcullis without a command does)",
		Long: "Run the server: -target=all (the default) runs every service in one process,\n" +
			"gateway|authn|authz|signer one of them. Without -config the embedded development\n" +
			"defaults run (sample users; loopback only unless -dev).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve.run(cmd.Context(), stdout, stderr)
		},
	}
	serve.register(serveCmd.Flags())

	root.AddCommand(
		serveCmd,
		&cobra.Command{
			Use:   "version",
			Short: "Print the version, commit and Go version",
			Args:  noArgs,
			RunE: func(*cobra.Command, []string) error {
				_, err := fmt.Fprintln(stdout, buildinfo.Read())
				return err
			},
		},
		flagCmd("registry-config", "Write a registry's auth.token files (trust bundle, JWKS) and print its config", std(runRegistryConfig)),
		groupCmd("keys", "The signing keys: list, rotate, certify (x5c)",
			flagCmd("list", "List the signing key's versions (admin API)", std(runKeys, "list")),
			flagCmd("rotate", "Rotate the signing key (admin API)", std(runKeys, "rotate")),
			flagCmd("certify", "Certify the Vault key's versions for x5c (once, or as a sidecar with -interval)", std(runCertify)),
		),
		groupCmd("sessions", "The sessions behind refresh tokens: list, revoke",
			flagCmd("list", "List sessions (admin API)", std(runSessions, "list")),
			flagCmd("revoke", "Revoke one session (-id) or a user's (-user) (admin API)", std(runSessions, "revoke")),
		),
		groupCmd("robots", "Robot accounts: create, list, revoke",
			flagCmd("create", "Create a robot account and print its key once (admin API)", std(runRobots, "create")),
			flagCmd("list", "List robot accounts (admin API)", std(runRobots, "list")),
			flagCmd("revoke", "Revoke a robot account (admin API)", std(runRobots, "revoke")),
		),
		patsCmd(std),
		flagCmd("token", "Fetch a token from a registry's token endpoint, as a client does",
			func(ctx context.Context, args []string) error {
				return reported(runTokenCmd(ctx, args, stdin, stdout, stderr))
			}),
		flagCmd("login", "Log in to a registry in the browser (RFC 8628 device flow) and keep the session in docker's config", std(runLogin)),
		flagCmd("logout", "Log out of a registry: end the session at its token server (RFC 7009) and remove docker's entry", std(runLogout)),
		flagCmd("doctor", "Check a registry and its token server end to end (exit 1: problem found, 2: could not run)",
			func(ctx context.Context, args []string) error {
				return reported(runDoctorCmd(ctx, args, stdin, stdout, stderr))
			}),
		groupCmd("policy", "Test and evaluate authorization policies",
			flagCmd("test", "Run a policy directory's Rego tests", std(runPolicy, "test")),
			flagCmd("eval", "Evaluate a policy for one request and say why", std(runPolicy, "eval")),
		),
		groupCmd("migrate", "Migrate from another token server",
			flagCmd("docker-auth", "Turn a docker_auth config into a Portcullis config, htpasswd and policy", std(runMigrate, "docker-auth")),
		),
	)
	root.SetIn(stdin)
	root.SetOut(stdout) // before the completion command, which keeps the writer it finds
	root.SetErr(stderr)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// cobra's prints its help and exits 0 for an unknown shell.
			c.Args, c.RunE = cobra.ArbitraryArgs, groupRun
		}
	}
	return root
}

// noArgs refuses arguments as a usage error naming the closest command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return unknownCommand(cmd, args[0])
	}
	return usageError(cmd, fmt.Errorf("unexpected argument %q", args[0]))
}

// unknownCommand is the usage error for a command parent does not have, with cobra's
// suggestions (edit distance and prefix).
func unknownCommand(parent *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, parent.CommandPath())
	if parent.SuggestionsMinimumDistance <= 0 {
		parent.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	}
	if s := parent.SuggestionsFor(name); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return usageError(parent, errors.New(msg))
}

// groupCmd is a command that only holds subcommands: without one, or with an unknown one,
// it is a usage error (cobra's default would print the help and exit 0).
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		// A flag before a mistyped subcommand must not hide the mistake.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE:               groupRun,
	}
	c.AddCommand(subs...)
	return c
}

func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unknownCommand(cmd, args[0])
	}
	var names []string
	for _, s := range cmd.Commands() {
		names = append(names, s.Name())
	}
	return usageError(cmd, fmt.Errorf("give a subcommand: %s", strings.Join(names, ", ")))
}

// flagCmd is a command that parses its own flags with the standard flag package, so every
// spelling it took keeps working. Its -h and `portcullis help CMD` print the flag set's own
// usage; flag.ErrHelp from -h is exit 0.
func flagCmd(use, short string, run func(ctx context.Context, args []string) error) *cobra.Command {
	c := &cobra.Command{
		Use:                use + " [flags]",
		Short:              short,
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := run(cmd.Context(), args)
			if errors.Is(err, flag.ErrHelp) {
				return nil // cobra would print its help after the flag set's usage
			}
			return err
		},
	}
	// cobra completes no flags of a command that parses its own: offer the flag set's.
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !strings.HasPrefix(toComplete, "-") || strings.Contains(toComplete, "=") || slices.Contains(args, "--") {
			return nil, cobra.ShellCompDirectiveDefault // a value or an argument: most are files
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		fs := flagCmdFlags(ctx, run)
		if len(args) > 0 && takesValue(fs, args[len(args)-1]) {
			return nil, cobra.ShellCompDirectiveDefault // -exchange -: the value, standard input
		}
		return completeFlags(fs, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
	c.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s\n\n", cmd.Short)
		_ = run(cmd.Context(), []string{"-h"})
	})
	return c
}

// flagsProbe, in a command's context, asks for its flag set rather than a run: the command
// builds its flags as it always does, and parseFlags (or probeFlags) hands them over and ends
// it before it reads input or does anything. Completion thus offers the very flags the command
// parses, with no list kept beside them.
type flagsProbe struct{ fs *flag.FlagSet }

type flagsProbeKey struct{}

// errFlagsProbed ends a probed command. It is flag.ErrHelp to the commands, which end quietly
// on it as after their usage.
var errFlagsProbed = fmt.Errorf("flags probed for completion: %w", flag.ErrHelp)

// probeFlags hands fs to a probe in ctx and returns errFlagsProbed; without one, nil. A
// command that parses its flags without parseFlags calls it first.
func probeFlags(ctx context.Context, fs *flag.FlagSet) error {
	p, ok := ctx.Value(flagsProbeKey{}).(*flagsProbe)
	if !ok {
		return nil
	}
	p.fs = fs
	return errFlagsProbed
}

// flagCmdFlags is the flag set a flagCmd's run parses; nil if it parsed none.
func flagCmdFlags(ctx context.Context, run func(context.Context, []string) error) *flag.FlagSet {
	p := &flagsProbe{}
	_ = run(context.WithValue(ctx, flagsProbeKey{}, p), nil)
	return p.fs
}

// takesValue reports whether word is a flag of fs that takes its value from the next word
// (-name or --name of a flag that is not boolean).
func takesValue(fs *flag.FlagSet, word string) bool {
	if fs == nil || !strings.HasPrefix(word, "-") || strings.Contains(word, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimPrefix(strings.TrimPrefix(word, "-"), "-"))
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// completeFlags is fs's flags whose names start as toComplete does, in its spelling: -name as
// the flag package takes them, --name after "--"; each with its usage's first line.
func completeFlags(fs *flag.FlagSet, toComplete string) []cobra.Completion {
	if fs == nil {
		return nil
	}
	dashes := "-"
	if strings.HasPrefix(toComplete, "--") {
		dashes = "--"
	}
	prefix := strings.TrimPrefix(toComplete, dashes)
	var out []cobra.Completion
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, prefix) {
			_, usage := flag.UnquoteUsage(f)
			usage, _, _ = strings.Cut(usage, "\n")
			out = append(out, cobra.CompletionWithDesc(dashes+f.Name, usage))
		}
	})
	return out
}

// helpCmd is `portcullis help [command]`; unlike cobra's, an unknown topic is a usage error.
func helpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			c, _, err := root.Find(args)
			if err != nil || c == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() && strings.HasPrefix(s.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(s.Name(), s.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || c == nil {
				c = root
			}
			if len(rest) > 0 && !c.DisableFlagParsing {
				return unknownCommand(c, rest[0])
			}
			if c.Context() == nil {
				c.SetContext(cmd.Context())
			}
			return c.Help()
		},
	}
}

// normalizeArgs rewrites a single-dash long flag the command knows (-config) to the
// double-dash form pflag parses (--config), walking down the command tree as cobra will.
// It stops at a command that parses its own flags. stray is a word the root command was
// given that names no command (the root takes no arguments).
func normalizeArgs(root *cobra.Command, args []string) (out []string, stray string) {
	out = make([]string, 0, len(args))
	cmd := root
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || cmd.DisableFlagParsing {
			return append(out, args[i:]...), ""
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if sub := subcommand(cmd, a); sub != nil {
				cmd = sub
			} else if cmd == root {
				return nil, a
			}
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookupFlag(cmd, name)
		// An unknown one too, unless a group command passes it on: pflag then names it
		// (--tagret) instead of its first letter as a shorthand.
		if !strings.HasPrefix(a, "--") && len(name) > 1 && (f != nil || cmd.Runnable() && !cmd.HasSubCommands() || cmd == root) {
			a = "-" + a
		}
		out = append(out, a)
		if f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) && (strings.HasPrefix(a, "--") || len(name) == 1) {
			i++ // the flag's value, whatever it looks like
			out = append(out, args[i])
		}
	}
	return out, ""
}

func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	switch name {
	case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		// Added by cobra when it runs; what follows is theirs.
		if cmd.Parent() == nil {
			return &cobra.Command{DisableFlagParsing: true}
		}
	}
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	switch name {
	case "help", "h":
		return &pflag.Flag{Name: name, NoOptDefVal: "true"}
	case "version":
		if cmd.Parent() == nil {
			return &pflag.Flag{Name: name, NoOptDefVal: "true"}
		}
	}
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	if len(name) == 1 {
		return cmd.Flags().ShorthandLookup(name)
	}
	return cmd.InheritedFlags().Lookup(name)
}
