package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

const policyUsage = `usage: portcullis policy test [-v] DIR
       portcullis policy eval [-dir DIR | -bundle FILE | -config FILE] (-user NAME | -anonymous)
                              [-group G]... [-label K=V]... -scope SCOPE [-scope ...]
                              [-service S] [-ip ADDR] [-time RFC3339] [-json]

test  runs the Rego tests (test_* rules) of a policy directory with OPA's tester, as 'opa test'.
eval  decides one request with a policy and prints, per requested action, granted or denied
      and the policy's reason; the policy is a directory, a bundle, the config file's
      authz.opa, or by default the shipped one.
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errors.New("policy: give a subcommand: test or eval")
	}
	switch args[0] {
	case "test":
		return runPolicyTest(ctx, args[1:], stdout, stderr)
	case "eval":
		return runPolicyEval(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help":
		fmt.Fprint(stderr, policyUsage)
		return flag.ErrHelp
	}
	return fmt.Errorf("policy: unknown subcommand %q (want test or eval)", args[0])
}

func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "list passing tests too")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef(fs.Name(), "policy test: give one policy directory")
	}
	results, err := opa.RunTests(ctx, fs.Arg(0))
	if err != nil {
		return fmt.Errorf("policy test: %w", err)
	}
	var pass, fail, errs, skip int
	for _, r := range results {
		switch {
		case r.Skip:
			skip++
			if *verbose {
				fmt.Fprintf(stdout, "SKIP  %s\n", r.Name)
			}
		case r.Err != nil:
			errs++
			fmt.Fprintf(stdout, "ERROR %s (%s): %v\n", r.Name, r.Location, r.Err)
		case r.Fail:
			fail++
			fmt.Fprintf(stdout, "FAIL  %s (%s)\n", r.Name, r.Location)
			if r.Output != "" {
				fmt.Fprintf(stdout, "%s", indentLines(r.Output, "      "))
			}
		default:
			pass++
			if *verbose {
				fmt.Fprintf(stdout, "PASS  %s (%s)\n", r.Name, r.Duration.Round(time.Microsecond))
			}
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed, %d errors, %d skipped\n", pass, fail, errs, skip)
	switch {
	case fail+errs > 0:
		return reported(1) // the failures are printed above
	case pass == 0:
		fmt.Fprintln(stderr, "policy test: no tests (test_* rules) ran")
		return reported(1)
	}
	return nil
}

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

type keyValues map[string][]string

func (kv keyValues) String() string { return fmt.Sprint(map[string][]string(kv)) }
func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	kv[k] = append(kv[k], v)
	return nil
}

func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "policy directory")
	bundle := fs.String("bundle", "", "policy bundle (.tar.gz)")
	cfgPath := fs.String("config", "", "take the policy from this config file's authz.opa")
	user := fs.String("user", "", "the caller's subject")
	anonymous := fs.Bool("anonymous", false, "the caller sent no credentials")
	var groups, scopes multiFlag
	fs.Var(&groups, "group", "a group of the caller; repeat for several")
	labels := keyValues{}
	fs.Var(labels, "label", "a label of the caller, KEY=VALUE; repeat (the same key again adds a value)")
	fs.Var(&scopes, "scope", "a requested scope, e.g. repository:team/app:pull,push; repeat for several")
	service := fs.String("service", "registry.example.com", "the registry's service name")
	ip := fs.String("ip", "", "the client's address")
	backend := fs.String("backend", "", "the authn backend that vouched for the caller")
	at := fs.String("time", "", "decide as of this time (RFC 3339; default now), for time-bound grants")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	var problems []string
	switch {
	case *user == "" && !*anonymous:
		problems = append(problems, "give -user NAME or -anonymous")
	case *user != "" && *anonymous:
		problems = append(problems, "-user and -anonymous exclude each other")
	}
	if len(scopes) == 0 {
		problems = append(problems, "give at least one -scope")
	}
	sources := 0
	for _, s := range []string{*dir, *bundle, *cfgPath} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		problems = append(problems, "-dir, -bundle and -config exclude each other")
	}
	requested, err := scope.ParseList(scopes)
	if err != nil {
		problems = append(problems, err.Error())
	}
	now := time.Now
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			problems = append(problems, fmt.Sprintf("-time %q is not RFC 3339", *at))
		}
		now = func() time.Time { return t }
	}
	if len(problems) > 0 {
		return usagef(fs.Name(), "policy eval: %s", strings.Join(problems, "; "))
	}
	var oc opa.Config
	switch {
	case *dir != "":
		oc.Dir = *dir
	case *bundle != "":
		oc.Bundle = &opa.BundleConfig{Path: *bundle}
	case *cfgPath != "":
		cfg, _, err := app.LoadConfig(*cfgPath, false, app.DefaultDataDir)
		if err != nil {
			return err
		}
		oc = cfg.Authz.OPA
	}
	oc.DecisionLogs = opa.DecisionLogConfig{} // eval prints its one decision itself
	if oc.Bundle != nil && oc.Bundle.URL != "" {
		return errors.New("policy eval: the config's policy comes from a bundle server; download the bundle and give -bundle FILE")
	}
	az, err := oc.Open(ctx, authz.Deps{Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		return err
	}
	if c, ok := az.(interface{ Close(context.Context) error }); ok {
		defer c.Close(ctx)
	}
	// A repeated key gives the label several values, as an LDAP attribute or an array claim.
	var lbl map[string][]string
	if len(labels) > 0 {
		lbl = labels
	}
	id := identity.Identity{Subject: *user, Anonymous: *anonymous, Groups: groups, Labels: lbl, Backend: *backend}
	req := authz.Request{Identity: id, Service: *service, Requested: requested, RemoteAddr: *ip}
	ex, ok := az.(authz.Explainer)
	if !ok {
		return errors.New("policy eval: this engine cannot explain its decisions")
	}
	d, reasons, err := ex.Explain(ctx, req)
	if err != nil {
		return err
	}
	var st authz.PolicyStatus
	if p, ok := az.(authz.PolicyReporter); ok {
		st = p.PolicyStatus(ctx)
	}
	return printDecision(stdout, *asJSON, st, requested, d, reasons)
}

type evalAction struct {
	Action  string `json:"action"`
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
}

type evalScope struct {
	Scope   string       `json:"scope"`
	Actions []evalAction `json:"actions"`
}

func printDecision(w io.Writer, asJSON bool, st authz.PolicyStatus, requested []scope.Scope, d authz.Decision, reasons []authz.Reason) error {
	var out []evalScope
	for _, s := range requested {
		es := evalScope{Scope: s.String()}
		var got []string
		for _, g := range d.Granted {
			if g.Type == s.Type && g.Class == s.Class && g.Name == s.Name {
				got = append(got, g.Actions...)
			}
		}
		for _, a := range s.Actions {
			ea := evalAction{Action: a, Granted: slices.Contains(got, a)}
			if !ea.Granted {
				for _, r := range reasons {
					if r.Type == s.Type && r.Class == s.Class && r.Name == s.Name && r.Action == a {
						ea.Reason = r.Reason
					}
				}
			}
			es.Actions = append(es.Actions, ea)
		}
		out = append(out, es)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"policy": st.Source, "revision": st.Revision, "scopes": out})
	}
	fmt.Fprintf(w, "policy: %s (revision %s)\n", st.Source, st.Revision)
	for _, es := range out {
		fmt.Fprintln(w, es.Scope)
		for _, a := range es.Actions {
			switch {
			case a.Granted:
				fmt.Fprintf(w, "  %-8s granted\n", a.Action)
			case a.Reason != "":
				fmt.Fprintf(w, "  %-8s denied: %s\n", a.Action, a.Reason)
			default:
				fmt.Fprintf(w, "  %-8s denied (the policy gives no reason)\n", a.Action)
			}
		}
	}
	return nil
}
