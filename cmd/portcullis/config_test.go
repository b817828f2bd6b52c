package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "c.yaml", `
log: {level: loud}
gateway:
  token_ttl: 10s
  public_url: "ftp://x"
authn:
  backends:
    - name: a
      type: htpasswd
      config: {}
    - name: a
      type: ldapx
signer:
  key: {type: local, config: {kid_mode: sideways}}
`)
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"log.level", "gateway.services", "gateway.token_ttl", "gateway.public_url",
		"authn.backends[0].config.path", "authn.backends[1].name", `unknown authn backend type "ldapx"`,
		"signer.key.config.path", "signer.key.config.kid_mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problem list lacks %q:\n%v", want, err)
		}
	}
}

func TestUnknownFieldsAreErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"top level":      "gatway: {}\n",
		"nested":         "gateway: {listen_addr: x}\n",
		"backend config": "authn: {backends: [{name: a, type: htpasswd, config: {path: x, reload: 1s}}]}\ngateway: {services: [r]}\nsigner: {key: {type: local, config: {path: k}}}\n",
	}
	for name, body := range cases {
		c, err := Load(writeFile(t, "c.yaml", body), false)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%s: unknown field accepted", name)
		}
	}
}

func TestEnvExpansionIsExplicit(t *testing.T) {
	t.Setenv("PC_TEST_SERVICE", "registry.example")
	p := writeFile(t, "c.yaml", "gateway: {services: [\"${PC_TEST_SERVICE}\"]}\n")
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Services[0] != "${PC_TEST_SERVICE}" {
		t.Fatalf("expanded without being asked: %v", c.Gateway.Services)
	}
	c, err = Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Services[0] != "registry.example" {
		t.Fatalf("not expanded: %v", c.Gateway.Services)
	}
}

func TestDevConfigIsValidAndHasSampleUsers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := DevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Listen != "127.0.0.1:5001" || c.Gateway.Services[0] != "registry.local" {
		t.Fatalf("dev defaults changed: %+v", c.Gateway)
	}
	data, err := os.ReadFile(filepath.Join(dir, "htpasswd"))
	if err != nil || !strings.HasPrefix(string(data), "alice:$2") || !strings.Contains(string(data), "\nadmin:$2") {
		t.Fatalf("sample users: %v %q", err, data)
	}
}

func TestVerifyConfigFlag(t *testing.T) {
	t.Parallel()
	var out, errb strings.Builder
	bad := writeFile(t, "c.yaml", "gateway: {services: []}\n")
	if err := run(t.Context(), []string{"-verify-config", "-config", bad}, &out, &errb); err == nil {
		t.Fatal("-verify-config accepted a bad file")
	}
	good := writeFile(t, "c.yaml", "gateway: {services: [r]}\nauthn: {backends: [{name: s, type: static, config: {users: []}}]}\nsigner: {key: {type: local, config: {path: /nonexistent/k.pem}}}\n")
	if err := run(t.Context(), []string{"-verify-config", "-config", good}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("output %q", out.String())
	}
}
