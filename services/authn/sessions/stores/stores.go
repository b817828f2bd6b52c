// Package stores is the one list of authn state store types (authnstore.Store: sessions,
// robots and lockout). Adding a store means adding a line here; nothing registers itself.
package stores

import (
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/pkg/config"
	"github.com/portcullis-dev/portcullis/services/authn/authnstore"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/sqlite"
)

// Types maps a config `type:` to a constructor of its empty Config.
func Types() map[string]func() authnstore.Config {
	return map[string]func() authnstore.Config{
		"sqlite":   func() authnstore.Config { return &sqlite.Config{} },
		"postgres": func() authnstore.Config { return &postgres.Config{} },
	}
}

// Spec is the store as written in the config file; Config is decoded in a second step once
// Type is known.
type Spec struct {
	Type   string    `yaml:"type"`
	Config yaml.Node `yaml:"config"`
}

// Decode turns a Spec into its typed config.
func Decode(s Spec) (authnstore.Config, error) {
	return config.DecodeTyped("authn store", Types(), s.Type, &s.Config)
}
