// Package pbconv converts between the shared protobuf messages and the Go domain types,
// so every service boundary converts the same way.
package pbconv

import (
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"

	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// IdentityToPB converts an identity to its message.
func IdentityToPB(id identity.Identity) *commonv1.Identity {
	return &commonv1.Identity{Subject: id.Subject, Anonymous: id.Anonymous, Groups: id.Groups, Labels: id.Labels, Backend: id.Backend}
}

// IdentityFromPB converts a message to an identity; nil is anonymous.
func IdentityFromPB(p *commonv1.Identity) identity.Identity {
	if p == nil {
		return identity.Anon()
	}
	return identity.Identity{Subject: p.GetSubject(), Anonymous: p.GetAnonymous(), Groups: p.GetGroups(), Labels: p.GetLabels(), Backend: p.GetBackend()}
}

// ScopesToPB converts scopes to messages.
func ScopesToPB(ss []scope.Scope) []*commonv1.Scope {
	out := make([]*commonv1.Scope, len(ss))
	for i, s := range ss {
		out[i] = &commonv1.Scope{Type: s.Type, Class: s.Class, Name: s.Name, Actions: s.Actions}
	}
	return out
}

// ScopesFromPB converts messages to scopes.
func ScopesFromPB(ps []*commonv1.Scope) []scope.Scope {
	out := make([]scope.Scope, len(ps))
	for i, p := range ps {
		out[i] = scope.Scope{Type: p.GetType(), Class: p.GetClass(), Name: p.GetName(), Actions: p.GetActions()}
	}
	return out
}
