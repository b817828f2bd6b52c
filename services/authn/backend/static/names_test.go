package static_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

// A static user named robot:ci would log in (OAuth2 form, username=robot:ci) as the robot
// "ci"'s subject: the name is refused at config check and at Open.
func TestUserNamedLikeARobotIsRefused(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"robot:ci", "system:anonymous", "corp:alice"} {
		cfg := &static.Config{Users: []static.User{{Name: name, PasswordHash: string(h)}}}
		if errs := cfg.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), `must not contain ":"`) {
			t.Errorf("Validate with user %q: %v", name, errs)
		}
		if _, err := cfg.Open(context.Background(), authn.Deps{}); err == nil {
			t.Errorf("Open with user %q succeeded", name)
		}
	}
}
