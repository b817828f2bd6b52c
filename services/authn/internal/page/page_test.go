package page_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/internal/page"
)

func TestSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want int }{{0, 50}, {-5, 50}, {1, 1}, {1000, 1000}, {1001, 1000}} {
		if got := page.Size(tc.in, 50, 1000); got != tc.want {
			t.Errorf("Size(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	type pos struct {
		After string `json:"a"`
	}
	tok := page.EncodeToken(pos{After: "ci-bot"})
	var got pos
	if !page.DecodeToken(tok, 0, &got) || got.After != "ci-bot" {
		t.Fatalf("round trip: %q -> %+v", tok, got)
	}
	for _, tc := range []struct {
		name, tok string
		max       int
	}{
		{"not base64url", "!!", 0},
		{"not JSON", "bm90IGpzb24", 0},
		{"too long", tok, len(tok) - 1},
		{"huge", strings.Repeat("A", 10000), 512},
	} {
		if page.DecodeToken(tc.tok, tc.max, &pos{}) {
			t.Errorf("%s: %q accepted", tc.name, tc.tok)
		}
	}
}
