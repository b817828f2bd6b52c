// Package keymanager is the one list of key manager types.
package keymanager

import (
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/memory"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

// Types maps a config `type:` to a constructor of its empty Config.
func Types() map[string]func() signer.KeyManagerConfig {
	return map[string]func() signer.KeyManagerConfig{
		"local":  func() signer.KeyManagerConfig { return &local.Config{} },
		"memory": func() signer.KeyManagerConfig { return &memory.Config{} },
		"vault":  func() signer.KeyManagerConfig { return &vault.Config{} },
	}
}

// Spec is the key manager as written in the config file.
type Spec struct {
	Type   string    `yaml:"type"`
	Config yaml.Node `yaml:"config"`
}

// Decode turns a Spec into its typed config.
func Decode(s Spec) (signer.KeyManagerConfig, error) {
	return config.DecodeTyped("key manager", Types(), s.Type, &s.Config)
}

// NewSpec is key manager config c as a config file holds it, for programs that build a
// configuration rather than write one.
func NewSpec(c signer.KeyManagerConfig) (Spec, error) {
	typ, n, err := config.EncodeTyped("key manager", Types(), c)
	return Spec{Type: typ, Config: n}, err
}
