// Package backend is the one list of authn backend types. Adding a backend means adding a
// line here; nothing registers itself.
package backend

import (
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/backend/ldap"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
	"github.com/portcullis-dev/portcullis/services/authn/backend/pat"
	"github.com/portcullis-dev/portcullis/services/authn/backend/robot"
	ssobackend "github.com/portcullis-dev/portcullis/services/authn/backend/sso"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

// Types maps a config `type:` to a constructor of its empty Config.
func Types() map[string]func() authn.BackendConfig {
	return map[string]func() authn.BackendConfig{
		"htpasswd": func() authn.BackendConfig { return &htpasswd.Config{} },
		"ldap":     func() authn.BackendConfig { return &ldap.Config{} },
		"oidc":     func() authn.BackendConfig { return &oidc.Config{} },
		"pat":      func() authn.BackendConfig { return &pat.Config{} },
		"robot":    func() authn.BackendConfig { return &robot.Config{} },
		"sso":      func() authn.BackendConfig { return &ssobackend.Config{} },
		"static":   func() authn.BackendConfig { return &static.Config{} },
	}
}

// Spec is one backend as written in the config file; Config is decoded in a second step
// once Type is known.
type Spec struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// SubjectPrefix namespaces the backend's users ("corp:" makes alice corp:alice); see
	// authn.Member.SubjectPrefix. Empty: bare subjects, which must not hold ':'.
	SubjectPrefix string    `yaml:"subject_prefix"`
	Config        yaml.Node `yaml:"config"`
}

// Decode turns a Spec into its typed config.
func Decode(s Spec) (authn.BackendConfig, error) {
	return config.DecodeTyped("authn backend", Types(), s.Type, &s.Config)
}

// NewSpec is backend name with config c as a config file holds it, for programs that build
// a configuration rather than write one.
func NewSpec(name string, c authn.BackendConfig) (Spec, error) {
	typ, n, err := config.EncodeTyped("authn backend", Types(), c)
	return Spec{Name: name, Type: typ, Config: n}, err
}
