# Team namespaces: the shape a large organisation keeps in a reviewed repository.
#
#   teams:
#     namespaces:                 # a repository "payments/api" is in namespace "payments"
#       payments:
#         owners: {payments-devs: writer, payments-leads: admin, sre: reader}   # group: role
#     mirrors: [dockerhub, quay]  # pull-only for every authenticated user; nobody pushes
#     grants:                     # extra, time-bound grants to a group or a user
#       - {group: auditors, namespace: payments, role: reader, expires: "2026-12-31T00:00:00Z"}
#       - {user: alice, namespace: payments, role: writer, expires: "2026-12-01T00:00:00Z"}
#       - {user: bob, backend: corp, namespace: payments, role: reader}  # corp's bob only
#     group_backends: [corp, people]  # optional: groups count only from these authn backends
#
# Roles: reader pulls; writer pulls and pushes; admin also deletes. A grant without expires
# does not expire; an expired grant gives nothing (the request time decides: the service's
# clock). Anonymous callers get nothing; nobody gets the catalog.
package portcullis.authz

role_actions := {
	"reader": {"pull"},
	"writer": {"pull", "push"},
	"admin": {"pull", "push", "delete"},
}

authenticated if {
	not input.identity.anonymous
	input.identity.subject != ""
}

namespace(name) := split(name, "/")[0] if contains(name, "/")

# roles(ns) are the caller's roles in namespace ns: from their groups, and from grants.
roles(ns) := group_roles(ns) | grant_roles(ns) if authenticated

roles(_) := set() if not authenticated

group_roles(ns) := {role |
	groups_trusted
	some group in input.identity.groups
	role := data.teams.namespaces[ns].owners[group]
}

# The same name from two backends is two callers (an LDAP group "payments-devs" and a CI
# token's claim mapped to the group "payments-devs" are not the same people): group_backends,
# when set, lists the backends (identity.backend, their names in authn.backends) whose groups
# count, and a grant's backend restricts it to the identities that backend vouched for.
groups_trusted if not data.teams.group_backends

groups_trusted if input.identity.backend in data.teams.group_backends

from_backend(g) if not g.backend

from_backend(g) if g.backend == input.identity.backend

grant_roles(ns) := {g.role |
	some g in data.teams.grants
	g.namespace == ns
	grantee(g)
	not expired(g)
}

grantee(g) if {
	groups_trusted
	g.group in input.identity.groups
	from_backend(g)
}

grantee(g) if {
	g.user == input.identity.subject
	from_backend(g)
}

expired(g) if time.now_ns() >= time.parse_rfc3339_ns(g.expires)

allowed contains [s.type, s.class, s.name, a] if {
	some s in input.scopes
	s.type == "repository"
	some role in roles(namespace(s.name))
	some a in s.actions
	a in role_actions[role]
}

allowed contains [s.type, s.class, s.name, "pull"] if {
	authenticated
	some s in input.scopes
	s.type == "repository"
	namespace(s.name) in data.teams.mirrors
	"pull" in s.actions
}

reasons contains {"type": s.type, "class": s.class, "name": s.name, "action": a, "reason": why} if {
	some i, s in input.scopes
	some a in s.actions
	not [s.type, s.class, s.name, a] in allowed
	why := denial(i, s, a)
}

# Why a denied action is denied: its scope's own reason when the scope alone decides (then it
# is the same for every action), else the action's. Both are documents of the decision, worked
# out once per scope: as functions of each denied action, the reasons walked the caller's roles
# and grants again for every action, which made a decision logged with its reasons cost five
# times one without.
denial(i, _, _) := scope_denial[i]

denial(i, s, a) := sprintf("%s is a pull-only mirror namespace", [namespace(s.name)]) if {
	not scope_denial[i]
	namespace(s.name) in data.teams.mirrors
	a != "pull"
}

denial(i, s, a) := sprintf("your roles in %s (%s) do not include %s", [namespace(s.name), concat(", ", sort(reason_roles[i])), a]) if {
	not scope_denial[i]
	not namespace(s.name) in data.teams.mirrors
}

scope_denial := {i: why | some i, s in input.scopes; why := scope_reason(i, s)}

scope_reason(_, _) := "anonymous callers get nothing" if not authenticated

scope_reason(_, s) := "only repositories are granted (the catalog is not)" if {
	authenticated
	s.type != "repository"
}

scope_reason(_, s) := "a repository name outside any namespace (no \"/\")" if {
	authenticated
	s.type == "repository"
	not contains(s.name, "/")
}

scope_reason(i, s) := sprintf("you have no role in namespace %s%s", [namespace(s.name), expired_note(namespace(s.name))]) if {
	authenticated
	s.type == "repository"
	not namespace(s.name) in data.teams.mirrors
	count(reason_roles[i]) == 0
}

# reason_roles[i] are the caller's roles in the namespace of repository scope i, for the reasons.
reason_roles := {i: roles(namespace(s.name)) |
	some i, s in input.scopes
	s.type == "repository"
	contains(s.name, "/")
}

expired_note(ns) := sprintf(" (your grant expired at %s)", [max(ends)]) if {
	ends := {g.expires |
		some g in data.teams.grants
		g.namespace == ns
		grantee(g)
		expired(g)
	}
	count(ends) > 0
} else := ""
