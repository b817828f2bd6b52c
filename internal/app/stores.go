package app

// The one list of authn state store types (storage.Store: sessions, robots, lockout, personal access tokens, device flows, web sessions and SSO accounts).
// Adding a store means adding a line here; nothing registers itself. It sits beside the
// config rather than in package storage because the stores import that package.

import (
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// storeTypes maps a config `type:` to a constructor of its empty Config.
func storeTypes() map[string]func() storage.Config {
	return map[string]func() storage.Config{
		"sqlite":   func() storage.Config { return &sqlite.Config{} },
		"postgres": func() storage.Config { return &postgres.Config{} },
	}
}

// StoreSpec is the store as written in the config file; Config is decoded in a second step once
// Type is known.
type StoreSpec struct {
	Type   string    `yaml:"type"`
	Config yaml.Node `yaml:"config"`
}

// decodeStore turns a StoreSpec into its typed config.
func decodeStore(s StoreSpec) (storage.Config, error) {
	return config.DecodeTyped("authn store", storeTypes(), s.Type, &s.Config)
}

// NewStoreSpec is store config c as a config file holds it, for programs that build a
// configuration rather than write one.
func NewStoreSpec(c storage.Config) (StoreSpec, error) {
	typ, n, err := config.EncodeTyped("authn store", storeTypes(), c)
	return StoreSpec{Type: typ, Config: n}, err
}
