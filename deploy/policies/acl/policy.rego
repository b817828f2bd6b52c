# The docker_auth static ACL, evaluated from data: data.acl is a list of rules exactly as
# docker_auth's `acl:` section writes them (`portcullis migrate docker-auth` converts one).
#
#   acl:
#     - match: {account: "/.+/", name: "${account}/*"}
#       actions: ["*"]
#       comment: "Logged-in users own their namespace"
#
# Semantics (docker_auth's auth_server/authz/acl.go):
#   - for each requested scope, the FIRST rule whose match matches decides; no match denies;
#   - match fields: account (the subject; "" when anonymous), type, name, service, ip (an
#     address or CIDR, against the client's address) and labels (KEY: pattern, against each of
#     the user's values for KEY); a missing field matches anything;
#   - a pattern "/…/" is an UNANCHORED Go regexp ("/admin/" matches "badminton"); anything
#     else is a glob in which * and ? do not cross "/";
#   - placeholders ${account} ${type} ${name} ${service} are replaced by the request's value;
#     ${labels:KEY} by each of the user's values for KEY (a rule matches if any choice does;
#     at most two distinct label placeholders per pattern); ${account:N} (also type, name,
#     service) by the N-th capture group of that field's regexp applied to the request's
#     value. EVERY substituted value is regex-quoted, which makes it a literal in a glob too:
#     a label value "*" (an OIDC claim a CI user chose) matches the name "*" only. docker_auth
#     quotes the first four only; quoting labels and capture groups can only narrow a rule;
#   - actions ["*"] grants every requested action; any other list grants what the request
#     and the list share; [] denies explicitly (and, being a match, stops the search).
#     registry:catalog:* asks for the action "*", so only a rule listing "*" grants it.
#
# When the engine loads this data it checks every rule (a bad regexp, IP or missing actions
# rejects the load, naming the rule) and compiles the rules, indexed by their literal
# account and first name segment, so a request looks only at the rules that can match.
# Run this policy's tests with `portcullis policy test` (it declares portcullis.acl_first_match).
package portcullis.authz

# allowed is the contract's output: [type, class, name, action].
allowed contains [s.type, s.class, s.name, a] if {
	some i, s in input.scopes
	some a in granted_actions[i]
}

# reasons says, per denied action, why (shown by `portcullis policy eval` and the decision
# log).
reasons contains {"type": s.type, "class": s.class, "name": s.name, "action": a, "reason": why} if {
	some i, s in input.scopes
	some a in s.actions
	not a in object.get(granted_actions, i, [])
	why := deny_reason(i)
}

deny_reason(i) := sprintf("rule %d (%s) matches and does not list this action", [first_match[i], rule_label(first_match[i])]) if {
	first_match[i]
}

deny_reason(i) := "no ACL rule matches: denied by default" if not first_match[i]

rule_label(j) := object.get(data.acl[j], "comment", "no comment")

# granted_actions[i] are the actions the first matching rule grants scope i.
granted_actions[i] := acts if {
	some i, s in input.scopes
	rule := data.acl[first_match[i]]
	acts := grant(rule.actions, s.actions)
}

grant(ruled, requested) := requested if ruled == ["*"]

grant(ruled, requested) := [a | some a in requested; a in ruled] if ruled != ["*"]

# first_match[i] is the index of the first rule matching scope i. When the engine loaded
# the data it compiled the rules (data.acl_index marks it), and portcullis.acl_first_match
# matches them in Go with an index; otherwise (this policy's tests, other OPA hosts) the
# rules below match them in Rego. Both follow docker_auth, and services/authz/opa checks on
# random ACLs that they agree. One object for all scopes rather than a rule per key: OPA
# keeps a whole document for the rest of the decision, and the reasons look up the rule
# that decided a scope again (looked up by key, each scope was matched anew, which made a
# logged decision cost twice the matching).
first_match := {i: j |
	some i, s in input.scopes
	j := portcullis.acl_first_match(object.union(request(s), {"ip": client_ip, "labels": input.identity.labels}))
} if data.acl_index

first_match := {i: min(matching) |
	some i, s in input.scopes
	r := request(s)
	matching := {j | some j in numbers.range(0, count(data.acl) - 1); matches(data.acl[j].match, r)}
	count(matching) > 0
} if not data.acl_index

# request is what docker_auth matches one scope against.
request(s) := {"account": account, "type": s.type, "name": s.name, "service": input.service}

account := "" if input.identity.anonymous

account := input.identity.subject if not input.identity.anonymous

matches(m, r) if {
	vars := placeholders(m, r)
	every f in ["account", "type", "name", "service"] {
		field_matches(m, f, r[f], vars)
	}
	ip_matches(m)
	labels_match(m, vars)
}

# placeholders maps each ${…} of the rule to its value.
placeholders(m, r) := object.union(
	{
		"${account}": regex_quote(r.account),
		"${type}": regex_quote(r.type),
		"${name}": regex_quote(r.name),
		"${service}": regex_quote(r.service),
	},
	capture_groups(m, r),
)

regex_quote(s) := regex.replace(s, `[\\.+*?()|\[\]{}^$]`, `\$0`)

# capture_groups: ${account:1} is group 1 of the account regexp applied to the account.
capture_groups(m, r) := {ref[0]: groups[n] |
	some f in ["account", "type", "name", "service"]
	some ref in regex.find_all_string_submatch_n(`\$\{(.+?):(\d+)\}`, object.get(m, f, ""), -1)
	re := regexp_of(object.get(m, ref[1], ""))
	found := regex.find_all_string_submatch_n(re, object.get(r, ref[1], ""), 1)
	count(found) > 0
	groups := [regex_quote(g) | some g in found[0]]
	n := to_number(ref[2])
	n >= 1
	n < count(groups)
}

is_regexp(p) if {
	count(p) > 2
	startswith(p, "/")
	endswith(p, "/")
}

regexp_of(p) := substring(p, 1, count(p) - 2) if is_regexp(p)

field_matches(m, f, _, _) if not m[f]

field_matches(m, f, value, vars) if pattern_matches(m[f], value, vars)

field_matches(m, f, value, vars) if {
	# docker_auth tries the label choices only when the plain replacement did not match.
	not pattern_matches(m[f], value, vars)
	some choice in label_choices(m[f])
	pattern_matches(m[f], value, object.union(vars, choice))
}

pattern_matches(p, value, vars) if {
	q := strings.replace_n(vars, p)
	is_regexp(q)
	regex.match(regexp_of(q), value)
}

pattern_matches(p, value, vars) if {
	q := strings.replace_n(vars, p)
	not is_regexp(q)
	glob.match(as_glob(q), ["/"], value)
}

# as_glob maps docker_auth's glob (Go's path.Match) onto OPA's: braces are literal there,
# and "**" is two stars that do not cross "/" either. An escaped character (a quoted
# placeholder value: `\*`, `\{`) stays escaped as it is.
as_glob(p) := concat("", [glob_token(t) | some t in regex.find_n(`\\.|\\$|\*+|[{}]|[^\\*{}]+`, p, -1)])

glob_token(t) := "*" if startswith(t, "*")

glob_token(t) := concat("", [`\`, t]) if t in {"{", "}"}

glob_token(t) := t if {
	not startswith(t, "*")
	not t in {"{", "}"}
}

# label_choices: each way to replace the pattern's ${labels:KEY} placeholders with one of the
# user's values for KEY.
label_choices(p) := [{k1: v1} |
	keys := label_keys(p)
	count(keys) == 1
	k1 := keys[0]
	some u1 in label_values(substring(k1, 9, count(k1) - 10))
	v1 := regex_quote(u1)
] if count(label_keys(p)) == 1

label_choices(p) := [{k1: v1, k2: v2} |
	keys := label_keys(p)
	k1 := keys[0]
	k2 := keys[1]
	some u1 in label_values(substring(k1, 9, count(k1) - 10))
	some u2 in label_values(substring(k2, 9, count(k2) - 10))
	v1 := regex_quote(u1)
	v2 := regex_quote(u2)
] if count(label_keys(p)) == 2

label_keys(p) := sort({k | some k in regex.find_n(`\$\{labels:[^}]+\}`, p, -1)})

# label_values: the user's values for a label (an array); a string, as inputs from before
# labels had several values carried, is one value.
label_values(k) := v if {
	v := input.identity.labels[k]
	is_array(v)
}

label_values(k) := [v] if {
	v := input.identity.labels[k]
	is_string(v)
}

label_values(k) := [] if not input.identity.labels[k]

ip_matches(m) if not m.ip

ip_matches(m) if {
	ip := client_ip
	net.cidr_contains(as_cidr(m.ip), ip)
}

as_cidr(p) := p if contains(p, "/")

as_cidr(p) := concat("", [p, "/128"]) if {
	not contains(p, "/")
	contains(p, ":")
}

as_cidr(p) := concat("", [p, "/32"]) if {
	not contains(p, "/")
	not contains(p, ":")
}

# client_ip is remote_addr without a port, if it has one.
client_ip := trim(input.remote_addr, "[]") if not regex.match(`^[0-9.]+:[0-9]+$|^\[.*\]:[0-9]+$`, input.remote_addr)

client_ip := trim(regex.replace(input.remote_addr, `:[0-9]+$`, ""), "[]") if regex.match(`^[0-9.]+:[0-9]+$|^\[.*\]:[0-9]+$`, input.remote_addr)

labels_match(m, _) if not m.labels

labels_match(m, vars) if {
	every k, p in m.labels {
		some v in label_values(k)
		pattern_matches(p, v, vars)
	}
}
