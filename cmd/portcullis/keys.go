package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/pkg/grpctls"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// runKeys is `portcullis keys list|rotate`, the admin API's command line, and
// `portcullis keys certify`, the x5c certifier (certify.go), which talks to Vault instead.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "certify" {
		return runCertify(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return fmt.Errorf("usage: portcullis keys list|rotate -addr HOST:PORT -admin-token-file FILE\n       %s", certifyUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("portcullis keys "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7004", "admin gRPC address: admin.listen of the process running the signer")
	tokenFile := fs.String("admin-token-file", envOr("PORTCULLIS_ADMIN_TOKEN_FILE", ""), "file holding the admin secret (env PORTCULLIS_ADMIN_TOKEN_FILE)")
	var tlsCfg grpctls.Config
	fs.StringVar(&tlsCfg.CertFile, "tls-cert", "", "client certificate naming spiffe://<trust_domain>/admin, when internal TLS is configured")
	fs.StringVar(&tlsCfg.KeyFile, "tls-key", "", "client key for -tls-cert")
	fs.StringVar(&tlsCfg.CAFile, "tls-ca", "", "CA of the signer's certificate")
	fs.StringVar(&tlsCfg.ServerName, "tls-server-name", "", "name to verify in the signer's certificate")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *tokenFile == "" {
		return fmt.Errorf("keys %s: -admin-token-file is required", verb)
	}
	secret, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if tlsCfg.Enabled() {
		if errs := tlsCfg.Validate(); len(errs) > 0 {
			return fmt.Errorf("keys %s: %w", verb, errs[0])
		}
		if creds, err = tlsCfg.Client(); err != nil {
			return err
		}
	}
	cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(secret)))
	c := signerv1.NewKeyAdminServiceClient(cc)
	var versions []*signerv1.KeyVersion
	if verb == "rotate" {
		resp, err := c.RotateKey(ctx, &signerv1.RotateKeyRequest{})
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		versions = resp.GetVersions()
	} else {
		resp, err := c.ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{})
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		versions = resp.GetVersions()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tCREATED\tACTIVE FROM\tRETIRES AT\tKEY ID")
	for _, v := range versions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.GetVersion(), v.GetState(), ts(v.GetCreatedAt()), ts(v.GetActiveFrom()), ts(v.GetRetiresAt()), v.GetKeyId())
	}
	return tw.Flush()
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
