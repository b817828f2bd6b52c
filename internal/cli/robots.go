package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

const robotsUsage = "usage: portcullis robots create -name NAME [-group GROUP]... [-label KEY=VALUE]... [-expires DURATION] -addr HOST:PORT -admin-token-file FILE [-o table|json]\n" +
	"       portcullis robots list -addr HOST:PORT -admin-token-file FILE [-o table|json]\n" +
	"       portcullis robots revoke -name NAME -addr HOST:PORT -admin-token-file FILE [-o table|json]"

// runRobots is `portcullis robots create|list|revoke`: robot accounts, through the admin API
// of the process running authn with a robot backend.
func runRobots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "revoke") {
		return errors.New(robotsUsage)
	}
	verb := args[0]
	fs, cli := newAdminFlags("robots "+verb, "admin.listen of the process running authn", stderr)
	var (
		name    string
		groups  multiFlag
		labels  labelFlag
		expires time.Duration
	)
	if verb != "list" {
		fs.StringVar(&name, "name", "", "the robot's name: its user name at docker login; its subject is robot:NAME")
	}
	if verb == "create" {
		fs.Var(&groups, "group", "a group of the robot (repeat for several)")
		fs.Var(&labels, "label", "a label KEY=VALUE of the robot (repeat for several)")
		fs.DurationVar(&expires, "expires", 0, "the key stops working this long after creation (e.g. 720h); 0: never")
	}
	if err := parseFlags(ctx, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs.Name(), "robots %s: unexpected arguments %q\n%s", verb, fs.Args(), robotsUsage)
	}
	if verb != "list" && name == "" {
		return usagef(fs.Name(), "robots %s: -name is required\n%s", verb, robotsUsage)
	}
	if expires < 0 {
		return usagef(fs.Name(), "robots create: -expires must not be negative")
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
	c := authnv1.NewRobotAdminServiceClient(cc)
	switch verb {
	case "create":
		req := &authnv1.CreateRobotRequest{Name: name, Groups: groups, Labels: labels.m}
		if expires > 0 {
			req.ExpiresIn = durationpb.New(expires)
		}
		resp, err := c.CreateRobot(ctx, req)
		if err != nil {
			return fmt.Errorf("robots create: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		return printCreated(stdout, resp)
	case "revoke":
		resp, err := c.RevokeRobot(ctx, &authnv1.RevokeRobotRequest{Name: name})
		if err != nil {
			return fmt.Errorf("robots revoke: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		_, err = fmt.Fprintf(stdout, "revoked robot %s (revoked at %s); its key is refused on every replica within a second\n",
			resp.GetRobot().GetName(), ts(resp.GetRobot().GetRevokedAt()))
		return err
	default:
		return listRobots(ctx, c, cli.output, stdout)
	}
}

// printCreated shows the key once, and says so: nobody can show it again.
func printCreated(w io.Writer, resp *authnv1.CreateRobotResponse) error {
	r := resp.GetRobot()
	expires := "never"
	if r.GetExpiresAt() != nil {
		expires = ts(r.GetExpiresAt())
	}
	_, err := fmt.Fprintf(w, "Created robot %s (subject %s, groups %s, expires %s).\n\n"+
		"Its key, shown only this once (Portcullis keeps only a hash of it; store it now, e.g. in your CI's secret store):\n\n"+
		"  %s\n\n"+
		"Log in with: docker login -u %s --password-stdin REGISTRY\n",
		r.GetName(), r.GetSubject(), dash(strings.Join(r.GetGroups(), ",")), expires, resp.GetKey(), r.GetName())
	return err
}

// listRobots reads every page, so the table and the JSON hold all of them.
func listRobots(ctx context.Context, c authnv1.RobotAdminServiceClient, output string, w io.Writer) error {
	robots, err := allPages(func(page string) ([]*authnv1.Robot, string, error) {
		resp, err := c.ListRobots(ctx, &authnv1.ListRobotsRequest{PageToken: page})
		return resp.GetRobots(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return fmt.Errorf("robots list: %w", err)
	}
	all := &authnv1.ListRobotsResponse{Robots: robots}
	if output == "json" {
		return printJSON(w, all)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tGROUPS\tLABELS\tCREATED\tEXPIRES\tLAST USED")
	for _, r := range all.GetRobots() {
		var labels []string
		for k, v := range r.GetLabels() {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		state := strings.ToLower(strings.TrimPrefix(r.GetState().String(), "ROBOT_STATE_"))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetName(), state, dash(strings.Join(r.GetGroups(), ",")),
			dash(strings.Join(labels, ",")), ts(r.GetCreatedAt()), ts(r.GetExpiresAt()), ts(r.GetLastUsedAt()))
	}
	return tw.Flush()
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// labelFlag is a repeatable KEY=VALUE flag.
type labelFlag struct{ m map[string]string }

var _ flag.Value = (*labelFlag)(nil)

func (l *labelFlag) String() string {
	if l == nil {
		return ""
	}
	var kv []string
	for k, v := range l.m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func (l *labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, not %q", v)
	}
	if l.m == nil {
		l.m = map[string]string{}
	}
	if _, dup := l.m[k]; dup {
		return fmt.Errorf("label %q is given twice", k)
	}
	l.m[k] = val
	return nil
}
