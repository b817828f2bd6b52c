// Command portcullis is the token server for container registries. One binary runs any
// service: -target=all (default, one process) or gateway|authn|authz|signer (split), and
// the commands that administer and check it (internal/cli).
package main

import (
	"context"
	"os"

	"github.com/portcullis-dev/portcullis/internal/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
