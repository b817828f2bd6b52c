# Portcullis — see README.md. Tools are installed at pinned versions into .cache/bin.
SHELL := /bin/bash
export PATH := $(CURDIR)/.cache/bin:$(PATH)
GO ?= go
ADDR ?= 127.0.0.1:5001
# make run's data dir: its signing key, sample users and session store.
RUN_DIR ?= .cache/run
# make run POLICY_DIR=DIR: the policy from DIR instead of the shipped default.
POLICY_DIR ?=
# make registry: a local distribution 3.1.2 trusting make run's key.
REGISTRY_ADDR ?= localhost:5000
REGISTRY_DIR ?= .cache/registry
FUZZTIME ?= 10s
# make bench BENCH_FLAGS='-only warm': more flags for cmd/portcullis-bench.
BENCH_FLAGS ?=

.PHONY: run registry test unit e2e generate check-generate check-breaking tools tools-go build bench fuzz clean image compose-certs compose-smoke compose-up compose-test

# -buildvcs=auto: stamp the commit `portcullis version` and portcullis_build_info show, even where
# GOFLAGS turns stamping off (and build without it outside a git checkout).
build:
	$(GO) build -buildvcs=auto -o bin/portcullis ./cmd/portcullis

## run: all-in-one Portcullis with embedded dev defaults (users alice/alice, admin/admin).
## POLICY_DIR=DIR: the same users and key with the policy from DIR (reloaded when it changes)
## and the admin REST API on 127.0.0.1:7010, its bearer secret in $(RUN_DIR)/admin-token
## (deploy/dev/policy-dir.yaml).
run: build
ifeq ($(POLICY_DIR),)
	./bin/portcullis -target=all -data-dir=$(RUN_DIR) -gateway.listen=$(ADDR)
else
	@# The development defaults write the sample users and key on their first run.
	./bin/portcullis -verify-config -data-dir=$(RUN_DIR) >/dev/null
	@test -s $(RUN_DIR)/admin-token || (umask 077 && openssl rand -hex 32 >$(RUN_DIR)/admin-token)
	PORTCULLIS_RUN_DIR=$(abspath $(RUN_DIR)) PORTCULLIS_POLICY_DIR=$(abspath $(POLICY_DIR)) \
	PORTCULLIS_PUBLIC_URL=http://localhost:$(lastword $(subst :, ,$(ADDR))) \
	./bin/portcullis -target=all -config deploy/dev/policy-dir.yaml -config.expand-env -data-dir=$(RUN_DIR) -gateway.listen=$(ADDR)
endif

## registry: distribution 3.1.2 (.cache/bin/registry3) on $(REGISTRY_ADDR) with storage in
## $(REGISTRY_DIR), trusting make run's signing key (bin/portcullis registry-config -data-dir
## $(RUN_DIR)) and sending clients to make run's token endpoint (scripts/registry.sh).
registry: build .cache/bin/registry3
	ADDR=$(ADDR) RUN_DIR=$(RUN_DIR) REGISTRY_ADDR=$(REGISTRY_ADDR) REGISTRY_DIR=$(REGISTRY_DIR) scripts/registry.sh

.cache/bin/registry3:
	scripts/install-tools.sh go

.cache/bin/vault:
	scripts/install-tools.sh vault

## test: everything — unit tests, policy tests, generated-code drift, the e2e suites against real
## registries (distribution 3.1.2, Debian's 2.8), skopeo, crane, oras, docker and Vault, and
## docker-compose.yml brought up with mutual TLS on the machine's Docker engine, and its fault test.
test: tools check-generate check-breaking unit e2e compose-smoke compose-test

unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# -artifacts keeps what tests save for people to look at (the page suites' screenshots) under
# .cache/e2e-artifacts/_artifacts/; each test's directory is on its "=== ARTIFACTS" line.
e2e: tools build
	@mkdir -p .cache/e2e-artifacts
	$(GO) test -count=1 -timeout=30m -tags=e2e -v -artifacts -outputdir=$(CURDIR)/.cache/e2e-artifacts ./e2e/... ./services/signer/keymanager/vault/... 2>&1 | tee .cache/e2e.log | grep -E '^(=== RUN|=== ARTIFACTS|--- |PASS|FAIL|ok|panic)' ; exit $${PIPESTATUS[0]}

tools:
	scripts/install-tools.sh all

tools-go:
	scripts/install-tools.sh go

generate: tools-go
	buf lint
	buf generate

check-generate: generate
	@git diff --exit-code --stat -- proto || { echo "generated code drifted: run 'make generate' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto)" || { git status --porcelain -- proto; echo "untracked generated files: run 'make generate' and commit" >&2; exit 1; }

## check-breaking: the protos stay wire-compatible with main's (buf breaking, offline, against
## this repository's git history: scripts/buf-breaking.sh says which commit).
check-breaking: tools-go
	scripts/buf-breaking.sh

## bench: tokens/s, p50/p99 and server CPU per token on loopback, printed, never asserted: Basic
## (warm, cold; all-in-one, split), the refresh grant with SQLite and PostgreSQL sessions, workload
## identity (a JWT as the password, login cache on and off; RFC 8693 token exchange), LDAP users on a local slapd (login
## cache on, and off: bind each time), robot keys, 1-3 signer replicas (split), Vault transit, authz
## decisions (default, teams, acl at 10/1,000/10,000 rules), a 10-minute soak with a replica restart. Needs Debian's postgresql, slapd and
## ldap-utils, and the vault binary (scripts/install-tools.sh debian vault). The warm Basic rows
## give allocations per token and their CPU per token as a multiple of the unavoidable work (one
## ES256 signature and one prepared OPA evaluation, measured in the same run).
## BENCH_FLAGS: more flags, e.g. make bench BENCH_FLAGS='-only warm' for just those rows.
bench: build
	$(GO) run ./cmd/portcullis-bench -bin=bin/portcullis $(BENCH_FLAGS)

## fuzz: every fuzz target in the module, each for FUZZTIME (make fuzz FUZZTIME=1m).
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf bin $(RUN_DIR) $(REGISTRY_DIR)

## image: a FROM-scratch image of the static binary (used by docker-compose.yml).
image:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -o bin/portcullis ./cmd/portcullis
	docker build -t portcullis:dev -f deploy/compose/Dockerfile .

## compose-certs: the CA, per-service certificates (spiffe://portcullis/<role>) and admin
## secret docker-compose.yml mounts, into deploy/compose/certs (git-ignored). -f renews.
compose-certs:
	scripts/compose-certs.sh

## compose-up: docker-compose.yml from nothing — images FROM scratch, certificates, Vault
## bootstrapped, PostgreSQL, the registry's trust files (SIGNERS=3 AUTHN=2 to scale the tiers).
## Refuses to start when a port it publishes is taken (make run, make registry), and tears
## down what it started when a step fails.
compose-up: tools-go .cache/bin/vault
	scripts/compose-up.sh

## compose-smoke: bring docker-compose.yml up (needs docker-compose), get a token through it,
## list the keys over the admin API with the admin certificate, and tear it down.
compose-smoke:
	scripts/compose-smoke.sh

## compose-test: docker-compose.yml with 3 signers and 2 authn on the Docker engine: skopeo and
## docker push and pull through it, then a signer killed and authn restarted under token load,
## 0 failed requests (e2e/compose_test.go); torn down after.
compose-test:
	$(GO) test -count=1 -timeout=15m -tags='e2e compose' -run TestComposeDeployment -v ./e2e/ 2>&1 | tee .cache/compose-test.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|compose_test.go:[0-9]+: ([0-9]|token requests)' ; exit $${PIPESTATUS[0]}
