// Package deploy ships the files that a deployment starts from, compiled into the binary.
package deploy

import "embed"

// Policies holds the shipped authorization policies. policies/default is the
// policy the embedded OPA engine uses when no policy directory is configured.
//
//go:embed policies
var Policies embed.FS
