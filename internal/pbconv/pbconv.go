// Package pbconv converts between the shared protobuf messages and the Go domain types,
// so every service boundary converts the same way.
package pbconv

import (
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// IdentityToPB converts an identity to its message. Labels go into label_values and, first
// value only, into the old labels map that replicas from before label_values read.
func IdentityToPB(id identity.Identity) *commonv1.Identity {
	var values map[string]*commonv1.LabelValues
	if len(id.Labels) > 0 {
		values = make(map[string]*commonv1.LabelValues, len(id.Labels))
		for k, vs := range id.Labels {
			values[k] = &commonv1.LabelValues{Values: vs}
		}
	}
	return &commonv1.Identity{Subject: id.Subject, Anonymous: id.Anonymous, Groups: id.Groups,
		Labels: identity.FirstLabels(id.Labels), LabelValues: values, Backend: id.Backend,
		PatName: id.PATName, PatScopes: patScopesToPB(id.PATScopes)}
}

// IdentityFromPB converts a message to an identity; nil is anonymous. A message from a
// replica that predates label_values carries the old labels map only: each becomes one value.
func IdentityFromPB(p *commonv1.Identity) identity.Identity {
	if p == nil {
		return identity.Anon()
	}
	id := identity.Identity{Subject: p.GetSubject(), Anonymous: p.GetAnonymous(), Groups: p.GetGroups(), Backend: p.GetBackend(),
		PATName: p.GetPatName()}
	if ps := p.GetPatScopes(); len(ps) > 0 {
		id.PATScopes = ScopesFromPB(ps)
	}
	if lv := p.GetLabelValues(); len(lv) > 0 {
		id.Labels = make(map[string][]string, len(lv))
		for k, v := range lv {
			if vs := v.GetValues(); len(vs) > 0 {
				id.Labels[k] = vs
			}
		}
	} else {
		id.Labels = identity.SingleLabels(p.GetLabels())
	}
	return id
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

// patScopesToPB leaves no narrowing as no field rather than an empty list.
func patScopesToPB(ss []scope.Scope) []*commonv1.Scope {
	if len(ss) == 0 {
		return nil
	}
	return ScopesToPB(ss)
}
