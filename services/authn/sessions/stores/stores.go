// Package stores is the one list of session store types. Adding a store means adding a line
// here; nothing registers itself.
package stores

import (
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/pkg/config"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/sqlite"
)

// Types maps a config `type:` to a constructor of its empty Config.
func Types() map[string]func() sessions.StoreConfig {
	return map[string]func() sessions.StoreConfig{
		"sqlite":   func() sessions.StoreConfig { return &sqlite.Config{} },
		"postgres": func() sessions.StoreConfig { return &postgres.Config{} },
	}
}

// Spec is the store as written in the config file; Config is decoded in a second step once
// Type is known.
type Spec struct {
	Type   string    `yaml:"type"`
	Config yaml.Node `yaml:"config"`
}

// Decode turns a Spec into its typed config.
func Decode(s Spec) (sessions.StoreConfig, error) {
	return config.DecodeTyped("session store", Types(), s.Type, &s.Config)
}
