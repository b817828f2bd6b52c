package htpasswd_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
)

// A user named robot:ci would pass for the robot "ci". The htpasswd format splits at the
// first ':', so such a line is refused, and the message must say why rather than blame the
// hash; a group member of that name is refused at config check.
func TestUserNamedLikeARobotIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "robot:ci:"+hash(t, "pw"))
	_, err := (&htpasswd.Config{Path: path}).Open(context.Background(), authn.Deps{})
	if err == nil || !strings.Contains(err.Error(), `must not contain ":"`) {
		t.Fatalf("Open with a user robot:ci: %v, want a refusal naming ':'", err)
	}
	errs := (&htpasswd.Config{Path: path, Groups: map[string][]string{"pushers": {"robot:ci"}}}).Validate()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `must not contain ":"`) {
		t.Fatalf("Validate with a member robot:ci: %v", errs)
	}
}
