package app_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

func storeSpecOf(t *testing.T, doc string) app.StoreSpec {
	t.Helper()
	var s app.StoreSpec
	if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecode(t *testing.T) {
	t.Parallel()
	c, err := app.DecodeStore(storeSpecOf(t, "{type: sqlite, config: {path: /data/sessions.db}}"))
	if sc, ok := c.(*sqlite.Config); err != nil || !ok || sc.Path != "/data/sessions.db" {
		t.Fatalf("sqlite: %#v, %v", c, err)
	}
	c, err = app.DecodeStore(storeSpecOf(t, "{type: postgres, config: {dsn_file: /run/dsn, max_conns: 20}}"))
	if pc, ok := c.(*postgres.Config); err != nil || !ok || pc.DSNFile != "/run/dsn" || pc.MaxConns != 20 {
		t.Fatalf("postgres: %#v, %v", c, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"{type: mongodb}", `unknown authn store type "mongodb" (known: postgres, sqlite)`},
		{"{type: sqlite, config: {path: /x.db, colour: red}}", "colour"},
		{"{type: postgres, config: {dsn: x, max_conns: lots}}", "cannot unmarshal"},
	} {
		if _, err := app.DecodeStore(storeSpecOf(t, tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}
