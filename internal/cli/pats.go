package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

const patsUsage = "usage: portcullis pats create -owner SUBJECT -name NAME -expires DURATION [-scope TYPE:NAME-PATTERN:ACTIONS]... -addr HOST:PORT -admin-token-file FILE [-o table|json]\n" +
	"       portcullis pats list -owner SUBJECT -addr HOST:PORT -admin-token-file FILE [-o table|json]\n" +
	"       portcullis pats revoke -id ID -addr HOST:PORT -admin-token-file FILE [-o table|json]"

// patsCmd is the `pats` command group; std binds a run function to the root's writers.
func patsCmd(std func(func(context.Context, []string, io.Writer, io.Writer) error, ...string) func(context.Context, []string) error) *cobra.Command {
	return groupCmd("pats", "People's personal access tokens: create, list, revoke",
		flagCmd("create", "Create a personal access token for a person and print it once (admin API)", std(runPATs, "create")),
		flagCmd("list", "List a person's personal access tokens (admin API)", std(runPATs, "list")),
		flagCmd("revoke", "Revoke a personal access token by id (admin API)", std(runPATs, "revoke")),
	)
}

// runPATs is `portcullis pats create|list|revoke`: personal access tokens, through the admin
// API of the process running authn with sso.pat.enabled.
func runPATs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "revoke") {
		return errors.New(patsUsage)
	}
	verb := args[0]
	fs, cli := newAdminFlags("pats "+verb, "admin.listen of the process running authn", stderr)
	var (
		owner, name, id string
		scopes          multiFlag
		expires         time.Duration
	)
	if verb != "revoke" {
		fs.StringVar(&owner, "owner", "", "the person's subject: the user name the token logs in with")
	}
	if verb == "create" {
		fs.StringVar(&name, "name", "", "the token's name, unique among the owner's (what policies see as identity.pat_name)")
		fs.DurationVar(&expires, "expires", 0, "required: the token stops working this long after creation (e.g. 720h), at most sso.pat.max_ttl")
		fs.Var(&scopes, "scope", "narrow the token to TYPE:NAME-PATTERN:ACTIONS, e.g. repository:alice/*:pull,push (repeat for several); none: whatever the owner gets")
	}
	if verb == "revoke" {
		fs.StringVar(&id, "id", "", "the token's id (pats list shows it)")
	}
	if err := parseFlags(ctx, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs.Name(), "pats %s: unexpected arguments %q\n%s", verb, fs.Args(), patsUsage)
	}
	var missing []string
	switch verb {
	case "create":
		for _, f := range []struct{ flag, v string }{{"-owner", owner}, {"-name", name}} {
			if f.v == "" {
				missing = append(missing, f.flag)
			}
		}
		if expires <= 0 {
			missing = append(missing, "-expires (positive)")
		}
	case "list":
		if owner == "" {
			missing = append(missing, "-owner")
		}
	case "revoke":
		if id == "" {
			missing = append(missing, "-id")
		}
	}
	if len(missing) > 0 {
		return usagef(fs.Name(), "pats %s: %s required\n%s", verb, strings.Join(missing, ", "), patsUsage)
	}
	if err := cli.check(); err != nil {
		return err
	}
	cc, ctx, cancel, err := cli.dial(ctx)
	if err != nil {
		return err
	}
	defer cc.Close()
	defer cancel()
	c := authnv1.NewPersonalAccessTokenAdminServiceClient(cc)
	switch verb {
	case "create":
		resp, err := c.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: owner, Name: name,
			ExpiresIn: durationpb.New(expires), Scopes: scopes})
		if err != nil {
			return fmt.Errorf("pats create: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		return printCreatedPAT(stdout, resp)
	case "revoke":
		resp, err := c.RevokePersonalAccessToken(ctx, &authnv1.RevokePersonalAccessTokenRequest{Id: id})
		if err != nil {
			return fmt.Errorf("pats revoke: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		p := resp.GetPersonalAccessToken()
		_, err = fmt.Fprintf(stdout, "revoked %s's token %s (%s); it is refused on every replica within a second\n", p.GetOwner(), p.GetName(), p.GetId())
		return err
	default:
		resp, err := c.ListPersonalAccessTokens(ctx, &authnv1.ListPersonalAccessTokensRequest{Owner: owner})
		if err != nil {
			return fmt.Errorf("pats list: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATE\tSCOPES\tCREATED\tEXPIRES\tLAST USED")
		for _, p := range resp.GetPersonalAccessTokens() {
			state := strings.ToLower(strings.TrimPrefix(p.GetState().String(), "PERSONAL_ACCESS_TOKEN_STATE_"))
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.GetId(), p.GetName(), state, dash(strings.Join(p.GetScopes(), " ")),
				ts(p.GetCreatedAt()), ts(p.GetExpiresAt()), ts(p.GetLastUsedAt()))
		}
		return tw.Flush()
	}
}

// printCreatedPAT shows the secret once, and says so: nobody can show it again.
func printCreatedPAT(w io.Writer, resp *authnv1.CreatePersonalAccessTokenResponse) error {
	p := resp.GetPersonalAccessToken()
	scopes := "everything the owner gets"
	if len(p.GetScopes()) > 0 {
		scopes = strings.Join(p.GetScopes(), " ")
	}
	_, err := fmt.Fprintf(w, "Created token %s for %s (id %s, expires %s, narrowed to: %s).\n\n"+
		"The token, shown only this once (Portcullis keeps only a hash of it; store it now, e.g. in your CI's secret store):\n\n"+
		"  %s\n\n"+
		"Log in with: docker login -u %s --password-stdin REGISTRY\n",
		p.GetName(), p.GetOwner(), p.GetId(), ts(p.GetExpiresAt()), scopes, resp.GetSecret(), p.GetOwner())
	return err
}
