package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"google.golang.org/protobuf/proto"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// runKeys is `portcullis keys list|rotate`, the admin API's command line, and
// `portcullis keys certify`, the x5c certifier (certify.go), which talks to Vault instead.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "certify" {
		return runCertify(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return fmt.Errorf("usage: portcullis keys list|rotate -addr HOST:PORT -admin-token-file FILE [-o table|json]\n       %s", certifyUsage)
	}
	verb := args[0]
	fs, cli := newAdminFlags("keys "+verb, "admin.listen of the process running the signer", stderr)
	if err := parseFlags(ctx, fs, args[1:]); err != nil {
		return err
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
	c := signerv1.NewKeyAdminServiceClient(cc)
	var resp interface {
		proto.Message
		GetVersions() []*signerv1.KeyVersion
	}
	if verb == "rotate" {
		resp, err = c.RotateKey(ctx, &signerv1.RotateKeyRequest{})
	} else {
		resp, err = c.ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{})
	}
	if err != nil {
		return fmt.Errorf("keys %s: %w", verb, err)
	}
	if cli.output == "json" {
		return printJSON(stdout, resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tCREATED\tACTIVE FROM\tRETIRES AT\tKEY ID")
	for _, v := range resp.GetVersions() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.GetVersion(), v.GetState(), ts(v.GetCreatedAt()), ts(v.GetActiveFrom()), ts(v.GetRetiresAt()), v.GetKeyId())
	}
	return tw.Flush()
}
