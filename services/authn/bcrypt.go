package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/identity"
)

// CheckHash accepts bcrypt hashes only: htpasswd's MD5, SHA1 and crypt forms are too weak
// to accept for a registry's credentials.
func CheckHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("malformed bcrypt hash")
		}
		return nil
	case strings.HasPrefix(hash, "$apr1$"):
		return fmt.Errorf("MD5 (apr1) hashes are not accepted; use bcrypt (htpasswd -B)")
	case strings.HasPrefix(hash, "{SHA}"):
		return fmt.Errorf("SHA1 hashes are not accepted; use bcrypt (htpasswd -B)")
	case strings.HasPrefix(hash, "$"):
		return fmt.Errorf("unsupported hash type; use bcrypt (htpasswd -B)")
	default:
		return fmt.Errorf("crypt or plaintext passwords are not accepted; use bcrypt (htpasswd -B)")
	}
}

// HashCost returns a bcrypt hash's cost, or 0 when it is not a valid bcrypt hash.
func HashCost(hash string) int {
	c, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return 0
	}
	return c
}

// User is a password-file user: a bcrypt hash and the groups the config gives it.
type User struct {
	Name   string
	Hash   string
	Groups []string
	// Labels are the user's labels, several values each (static users carry them).
	Labels map[string][]string
}

// Verify checks cr against u, where found says whether the backend knows the user; the
// comparison waits for a slot of lim (nil: unlimited) and fails with its error (ErrBusy, the
// context's) when it gets none. Password backends share it so they agree on chain semantics.
func Verify(ctx context.Context, lim *BcryptLimiter, u User, found bool, cr Credentials) (identity.Identity, error) {
	if !found {
		return identity.Identity{}, ErrNoMatch
	}
	ok, err := lim.Compare(ctx, u.Hash, cr.Password)
	if err != nil {
		return identity.Identity{}, err
	}
	if !ok {
		return identity.Identity{}, ErrInvalidCredentials
	}
	return u.identity(), nil
}

// Resolve is Verify without the password, for Backend.Resolve of password backends: the
// identity a successful Verify of u would return, or ErrNoMatch when the user is gone.
func Resolve(u User, found bool) (identity.Identity, error) {
	if !found {
		return identity.Identity{}, ErrNoMatch
	}
	return u.identity(), nil
}

func (u User) identity() identity.Identity {
	id := identity.Identity{Subject: u.Name, Groups: append([]string(nil), u.Groups...), Fingerprint: HashFingerprint(u.Hash)}
	if len(u.Labels) > 0 {
		id.Labels = make(map[string][]string, len(u.Labels))
		for k, vs := range u.Labels {
			id.Labels[k] = append([]string(nil), vs...)
		}
	}
	return id
}

// HashFingerprint is what a session records of a password backend's user: a SHA-256 of the
// stored hash under a domain prefix, truncated to 128 bits. It changes whenever the hash does
// (a new password, or the same one re-hashed with a new salt) and tells a reader of the
// session database nothing: without the hash's salt it cannot be tried against passwords.
func HashFingerprint(hash string) string {
	sum := sha256.Sum256([]byte("portcullis session fingerprint v1\x00" + hash))
	return "h1:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}
