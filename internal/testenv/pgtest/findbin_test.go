package pgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		install map[string][]string // major version directory → programs in its bin
		want    string              // the version directory chosen; "" = an error
	}{
		{"none", nil, ""},
		{"one", map[string][]string{"15": {"postgres", "initdb"}}, "15"},
		{"newest wins", map[string][]string{"13": {"postgres", "initdb"}, "15": {"postgres", "initdb"}, "9": {"postgres", "initdb"}}, "15"},
		{"client only is no server", map[string][]string{"16": {"psql"}, "15": {"postgres", "initdb"}}, "15"},
		{"no initdb", map[string][]string{"15": {"postgres"}}, ""},
		{"not a version", map[string][]string{"current": {"postgres", "initdb"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			for v, progs := range tt.install {
				bin := filepath.Join(root, v, "bin")
				if err := os.MkdirAll(bin, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range progs {
					if err := os.WriteFile(filepath.Join(bin, p), nil, 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := findBin(root)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no PostgreSQL server found under "+root) {
					t.Fatalf("findBin = %q, %v; want the not-found error", got, err)
				}
				return
			}
			if want := filepath.Join(root, tt.want, "bin"); got != want || err != nil {
				t.Fatalf("findBin = %q, %v; want %q", got, err, want)
			}
		})
	}
}
