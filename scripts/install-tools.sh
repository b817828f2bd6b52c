#!/usr/bin/env bash
# Installs every tool and real peer the build and the test suites use, cached under .cache/
# (git-ignored) so a second run is quick. Usage: scripts/install-tools.sh [go|debian|vault|hydra|all]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/.cache/bin"
mkdir -p "$BIN"
export GOBIN="$BIN"
export PATH="$BIN:$PATH"

# Pinned versions: bump deliberately.
REGISTRY_VERSION=v3.1.2
CRANE_VERSION=v0.22.1
ORAS_VERSION=v1.3.6
BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
GRPC_GATEWAY_VERSION=v2.33.0
HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0

VAULT_VERSION=v1.15.0
VAULT_SDK_VERSION=v0.10.2
VAULT_API_VERSION=v1.11.0

# Hydra's go.mod replaces pop with Ory's fork; the wrapper module copies that replace.
HYDRA_VERSION=v2.3.0
HYDRA_POP_REPLACE=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b

what=${1:-all}

gotool() { # name module@version
  local name=$1 mod=$2
  local stamp="$BIN/.$name.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then return 0; fi
  echo "install-tools: building $mod" >&2
  CGO_ENABLED=0 go install -trimpath "$mod"
  echo "$mod" >"$stamp"
}

install_go() {
  gotool buf "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
  gotool protoc-gen-go "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  gotool protoc-gen-go-grpc "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  gotool protoc-gen-grpc-gateway "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$GRPC_GATEWAY_VERSION"
  gotool protoc-gen-openapiv2 "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$GRPC_GATEWAY_VERSION"
  gotool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
  gotool oras "oras.land/oras/cmd/oras@$ORAS_VERSION"
  # deploy/helm/portcullis is rendered and checked against the Kubernetes API types in CI.
  gotool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # deploy/monitoring's alert rules are checked and unit-tested with promtool.
  gotool promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  # distribution 3.x is the registry the e2e suite runs as "registry3" (Debian's 2.8 is "docker-registry").
  if [ ! -x "$BIN/registry3" ] || [ "$(cat "$BIN/.registry3.version" 2>/dev/null)" != "$REGISTRY_VERSION" ]; then
    echo "install-tools: building distribution $REGISTRY_VERSION" >&2
    tmp=$(mktemp -d)
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
    mv "$tmp/registry" "$BIN/registry3"
    rmdir "$tmp"
    echo "$REGISTRY_VERSION" >"$BIN/.registry3.version"
  fi
}

install_debian() {
  local need=()
  command -v skopeo >/dev/null || need+=(skopeo)
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  command -v htpasswd >/dev/null || need+=(apache2-utils)
  command -v jq >/dev/null || need+=(jq)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  # The compose smoke test (make compose-smoke) brings docker-compose.yml up on the machine's engine.
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
  # The session store's PostgreSQL runs (storetest, e2e) start their own server from the
  # package's binaries (internal/testenv/pgtest) on their own port and data dir.
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
  # The LDAP backend's suites start their own OpenLDAP (internal/testenv/ldaptest) from the package's slapd,
  # seeded with ldapadd from ldap-utils.
  [ -x /usr/sbin/slapd ] || need+=(slapd)
  command -v ldapadd >/dev/null || need+=(ldap-utils)
  # The sign-in pages' suite (e2e, TestSignIn*) drives Debian's chromium headless through
  # chromedp and keeps its screenshots.
  command -v chromium >/dev/null || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "install-tools: apt-get install ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian's package starts a registry on :5000 as a service; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
  fi
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
}

# Vault has no Debian package and `go install` refuses its module (replace directives for its
# own api/sdk submodules), so the module is copied, the replaces dropped, and tagged api/sdk
# releases pinned instead. A vault already on PATH is used as it is.
install_vault() {
  if command -v vault >/dev/null && [ "$(command -v vault)" != "$BIN/vault" ]; then return 0; fi
  if [ -x "$BIN/vault" ] && [ "$(cat "$BIN/.vault.version" 2>/dev/null)" = "$VAULT_VERSION" ]; then return 0; fi
  echo "install-tools: building vault $VAULT_VERSION (long: ~8 min warm, ~20 min cold)" >&2
  local src work
  src=$(go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { echo "install-tools: could not download vault $VAULT_VERSION" >&2; return 1; }
  work="$ROOT/.cache/vault-src"
  rm -rf "$work"
  cp -r "$src" "$work"
  chmod -R u+w "$work"
  (
    cd "$work"
    for m in api api/auth/approle api/auth/kubernetes api/auth/userpass sdk; do
      go mod edit -dropreplace="github.com/hashicorp/vault/$m"
    done
    go mod edit -require="github.com/hashicorp/vault/sdk@$VAULT_SDK_VERSION" -require="github.com/hashicorp/vault/api@$VAULT_API_VERSION"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$BIN/vault.tmp" .
  )
  mv "$BIN/vault.tmp" "$BIN/vault"
  rm -rf "$work"
  echo "$VAULT_VERSION" >"$BIN/.vault.version"
}

# ORY Hydra is the OpenID provider the SSO suites sign in at. `go install` refuses its module
# (replace directives), so a small wrapper module under .cache/ requires it and copies the
# replace that matters: pop/v6 => Ory's fork. (Its other replace, hydra-client-go => ./internal/httpclient,
# points into a nested module the proxy's zip leaves out; the published hydra-client-go it requires is used.)
# -tags sqlite (cgo, mattn/go-sqlite3) gives the in-memory database the harness runs it with.
install_hydra() {
  if [ -x "$BIN/hydra" ] && [ "$(cat "$BIN/.hydra.version" 2>/dev/null)" = "$HYDRA_VERSION" ]; then return 0; fi
  echo "install-tools: building hydra $HYDRA_VERSION (cgo, -tags sqlite)" >&2
  command -v gcc >/dev/null || { echo "install-tools: hydra needs a C compiler (gcc) for go-sqlite3" >&2; return 1; }
  local work="$ROOT/.cache/hydra-build"
  rm -rf "$work"
  mkdir -p "$work"
  (
    cd "$work"
    cat >go.mod <<MOD
module portcullis.invalid/hydra-build

go 1.22

require github.com/ory/hydra/v2 $HYDRA_VERSION

replace github.com/gobuffalo/pop/v6 => ${HYDRA_POP_REPLACE/@/ }
MOD
    GOFLAGS=-mod=mod CGO_ENABLED=1 go build -trimpath -tags sqlite \
      -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" -o "$BIN/hydra.tmp" github.com/ory/hydra/v2
  )
  mv "$BIN/hydra.tmp" "$BIN/hydra"
  rm -rf "$work"
  echo "$HYDRA_VERSION" >"$BIN/.hydra.version"
}

case "$what" in
  go) install_go ;;
  debian) install_debian ;;
  vault) install_vault ;;
  hydra) install_hydra ;;
  all) install_debian; install_go; install_vault; install_hydra ;;
  *) echo "usage: $0 [go|debian|vault|hydra|all]" >&2; exit 2 ;;
esac
