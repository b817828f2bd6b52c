package identity

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Subject namespaces. A subject is one of:
//
//   - bare: a name without ':' (alice, alice@corp.example) — what password and directory
//     backends give by default;
//   - RobotPrefix + a robot's name (robot:ci) — only the robot backend gives these;
//   - AnonymousSubject, in tokens issued to callers without credentials;
//   - a backend's subject_prefix (which ends in ':') + what the backend maps.
//
// Since a bare subject never contains ':', no user, directory entry or claim can produce a
// subject of another namespace, and two backends with different prefixes never share one.
const (
	// NamespaceSep separates a subject's namespace from the rest; bare subjects never hold it.
	NamespaceSep = ":"
	// RobotPrefix starts every robot account's subject.
	RobotPrefix = "robot:"
	// SystemPrefix is reserved for subjects Portcullis itself gives (AnonymousSubject).
	SystemPrefix = "system:"
	// AnonymousSubject is the sub claim of tokens issued to callers who sent no credentials.
	AnonymousSubject = SystemPrefix + "anonymous"
)

// ErrNamespaceSep: a login name or a bare subject holds ':'.
var ErrNamespaceSep = errors.New(`must not contain ":" (it separates subject namespaces such as robot: and system:)`)

// CheckBareName refuses a login name or a subject mapped from user data (a directory
// attribute, a token claim) that could pass for a namespaced subject: one holding ':'.
func CheckBareName(name string) error {
	if strings.Contains(name, NamespaceSep) {
		return ErrNamespaceSep
	}
	return nil
}

// subjectPrefixRE is a subject_prefix: a short lower-case name and the separator.
var subjectPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}:$`)

// CheckSubjectPrefix checks a backend's subject_prefix: a lower-case name ending in ':', and
// not a namespace Portcullis gives itself (robot:, system:).
func CheckSubjectPrefix(p string) error {
	switch {
	case !subjectPrefixRE.MatchString(p):
		return fmt.Errorf("%q must be lower-case letters, digits, '.', '_' or '-', ending in ':' (e.g. \"corp:\")", p)
	case p == RobotPrefix, p == SystemPrefix:
		return fmt.Errorf("%q is reserved (robot accounts and anonymous callers)", p)
	}
	return nil
}
