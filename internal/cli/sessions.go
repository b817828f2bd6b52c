package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

const sessionsUsage = "usage: portcullis sessions list [-user USER] -addr HOST:PORT -admin-token-file FILE [-o table|json]\n" +
	"       portcullis sessions revoke (-id ID | -user USER) -addr HOST:PORT -admin-token-file FILE [-o table|json]"

// runSessions is `portcullis sessions list|revoke`: the sessions behind refresh tokens,
// through the admin API of the process running authn.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		return errors.New(sessionsUsage)
	}
	verb := args[0]
	fs, cli := newAdminFlags("sessions "+verb, "admin.listen of the process running authn", stderr)
	user := fs.String("user", "", "the user (subject) whose sessions to list or revoke")
	var id string
	if verb == "revoke" {
		fs.StringVar(&id, "id", "", "the session to revoke: its `ID`, as 'sessions list' shows")
	}
	if err := parseFlags(ctx, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs.Name(), "sessions %s: unexpected arguments %q\n%s", verb, fs.Args(), sessionsUsage)
	}
	if verb == "revoke" && (id == "") == (*user == "") {
		return usagef(fs.Name(), "sessions revoke: give exactly one of -id or -user\n%s", sessionsUsage)
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
	c := authnv1.NewSessionAdminServiceClient(cc)
	switch {
	case verb == "list":
		return listSessions(ctx, c, *user, cli.output, stdout)
	case id != "":
		if _, err := c.RevokeSession(ctx, &authnv1.RevokeSessionRequest{Id: id}); err != nil {
			return fmt.Errorf("sessions revoke: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, &authnv1.RevokeUserSessionsResponse{Revoked: 1})
		}
		_, err = fmt.Fprintf(stdout, "revoked session %s\n", id)
		return err
	default:
		resp, err := c.RevokeUserSessions(ctx, &authnv1.RevokeUserSessionsRequest{Subject: *user})
		if err != nil {
			return fmt.Errorf("sessions revoke: %w", err)
		}
		if cli.output == "json" {
			return printJSON(stdout, resp)
		}
		_, err = fmt.Fprintf(stdout, "revoked %d session(s) of %s\n", resp.GetRevoked(), *user)
		return err
	}
}

// listSessions reads every page, so the table and the JSON hold all of them.
func listSessions(ctx context.Context, c authnv1.SessionAdminServiceClient, user, output string, w io.Writer) error {
	sessions, err := allPages(func(page string) ([]*authnv1.Session, string, error) {
		resp, err := c.ListSessions(ctx, &authnv1.ListSessionsRequest{Subject: user, PageToken: page})
		return resp.GetSessions(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return fmt.Errorf("sessions list: %w", err)
	}
	all := &authnv1.ListSessionsResponse{Sessions: sessions}
	if output == "json" {
		return printJSON(w, all)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tSERVICE\tCLIENT\tCREATED\tLAST USED\tEXPIRES")
	for _, s := range all.GetSessions() {
		// A session ends at whichever comes first: idle or absolute expiry.
		exp := s.GetExpiresAt()
		if idle := s.GetIdleExpiresAt(); idle != nil && (exp == nil || idle.AsTime().Before(exp.AsTime())) {
			exp = idle
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.GetId(), s.GetSubject(), s.GetService(), dash(s.GetClientId()),
			ts(s.GetCreatedAt()), ts(s.GetLastUsedAt()), ts(exp))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
