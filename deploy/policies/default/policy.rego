# The shipped default policy. See deploy/policies/README.md for the contract.
#
#   - members of group "admins" may do everything they ask for;
#   - an authenticated user may pull, push and delete repositories under "<subject>/"
#     (the owner deletes in their own namespace, as docker_auth's reference config and
#     Docker Hub allow);
#   - an authenticated user may pull repositories under "library/";
#   - anonymous callers get nothing.
package portcullis.authz

# authenticated holds for callers with credentials. An identity that is not
# anonymous but has no subject is rejected before the policy runs; the second
# check keeps this policy safe on its own.
authenticated if {
	not input.identity.anonymous
	input.identity.subject != ""
}

# Groups carry no namespace: "admins" counts from every authn backend. If a backend maps
# groups from token claims, add a test of input.identity.backend here (policies README,
# "Matching on identity.backend").
admin if {
	authenticated
	"admins" in input.identity.groups
}

# The user's own namespace. The "/" is part of the prefix, so "alice" does
# not match "alice2/x" or "alicex/y". "library" is nobody's namespace. Prefixed
# subjects (corp:alice) and robots (robot:ci) have none: ":" is no repository character.
own_namespace(name) if {
	input.identity.subject != "library"
	startswith(name, concat("", [input.identity.subject, "/"]))
}

# Each element is [type, class, name, action]: the class is part of the key, so a rule
# grants exactly the scopes it looked at. These rules ignore the class, so they grant
# repository(plugin):alice/app like repository:alice/app.

# Admins get every action they request, on every type (including
# registry:catalog:* and the "*" action).
allowed contains [s.type, s.class, s.name, action] if {
	admin
	some s in input.scopes
	some action in s.actions
}

# Pull, push and delete in the user's own namespace; "*" stays the admins'.
allowed contains ["repository", s.class, s.name, action] if {
	authenticated
	some s in input.scopes
	s.type == "repository"
	own_namespace(s.name)
	some action in s.actions
	action in {"pull", "push", "delete"}
}

# Pull from library/.
allowed contains ["repository", s.class, s.name, "pull"] if {
	authenticated
	some s in input.scopes
	s.type == "repository"
	startswith(s.name, "library/")
	"pull" in s.actions
}
