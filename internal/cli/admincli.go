package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
)

// adminCLI is what every admin command (`portcullis keys`, `portcullis sessions`) shares:
// where the admin API listens, the bearer secret, the client certificate and the output
// format.
type adminCLI struct {
	cmd       string // "keys list", for messages
	addr      string
	tokenFile string
	tls       grpctls.Config
	output    string
}

// newAdminFlags is a flag set for `portcullis CMD` with the admin API's flags; addrHelp says
// which process's admin.listen to name.
func newAdminFlags(cmd, addrHelp string, stderr io.Writer) (*flag.FlagSet, *adminCLI) {
	c := &adminCLI{cmd: cmd}
	fs := flag.NewFlagSet("portcullis "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7004", "admin gRPC address: "+addrHelp)
	fs.StringVar(&c.tokenFile, "admin-token-file", envOr("PORTCULLIS_ADMIN_TOKEN_FILE", ""), "file holding the admin secret (env PORTCULLIS_ADMIN_TOKEN_FILE)")
	fs.StringVar(&c.tls.CertFile, "tls-cert", "", "client certificate naming spiffe://<trust_domain>/admin, when internal TLS is configured")
	fs.StringVar(&c.tls.KeyFile, "tls-key", "", "client key for -tls-cert")
	fs.StringVar(&c.tls.CAFile, "tls-ca", "", "CA of the admin listener's certificate")
	fs.StringVar(&c.tls.ServerName, "tls-server-name", "", "name to verify in the admin listener's certificate")
	fs.StringVar(&c.output, "o", "table", "output format: table or json")
	return fs, c
}

// check reports flag values that cannot work (usage errors), before anything is dialled.
func (c *adminCLI) check() error {
	if c.tokenFile == "" {
		return usagef("portcullis "+c.cmd, "%s: -admin-token-file is required", c.cmd)
	}
	if c.output != "table" && c.output != "json" {
		return usagef("portcullis "+c.cmd, "%s: -o must be table or json, not %q", c.cmd, c.output)
	}
	return nil
}

// dial connects to the admin API and returns a context that carries the admin secret and
// bounds the command. The caller closes the connection and calls cancel.
func (c *adminCLI) dial(ctx context.Context) (*grpc.ClientConn, context.Context, context.CancelFunc, error) {
	if err := c.check(); err != nil {
		return nil, nil, nil, err
	}
	secret, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return nil, nil, nil, err
	}
	creds := insecure.NewCredentials()
	if c.tls.Enabled() {
		if errs := c.tls.Validate(); len(errs) > 0 {
			return nil, nil, nil, fmt.Errorf("%s: %w", c.cmd, errors.Join(errs...))
		}
		// The admin API runs in the service processes, each presenting its own certificate;
		// a gateway's (or any other) certificate is not an admin server's.
		if creds, err = c.tls.Client(grpctls.RoleAuthn, grpctls.RoleAuthz, grpctls.RoleSigner); err != nil {
			return nil, nil, nil, err
		}
	}
	cc, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(secret)))
	return cc, ctx, cancel, nil
}

// printJSON writes m as indented JSON with the proto field names (snake_case) and RFC 3339
// timestamps, the form the admin REST API will answer with.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// allPages calls list for each page of an admin list call until the server gives no next
// page token, so a table or a JSON document holds every item.
func allPages[T any](list func(pageToken string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	for page := ""; ; {
		items, next, err := list(page)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		page = next
	}
}
