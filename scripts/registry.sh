#!/usr/bin/env bash
# `make registry`: a local distribution 3.1.2 (.cache/bin/registry3, built by
# scripts/install-tools.sh go) behind `make run`'s Portcullis, in the foreground. Its trust
# files come from `bin/portcullis registry-config -data-dir $RUN_DIR` (make run's signing key:
# generated here if make run has not made it yet), its auth section is the one registry-config
# writes, and storage (deletes enabled) is in $REGISTRY_DIR/data.
#   ADDR=127.0.0.1:5001 RUN_DIR=.cache/run REGISTRY_ADDR=localhost:5000 REGISTRY_DIR=.cache/registry scripts/registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${ADDR:-127.0.0.1:5001}
run_dir=${RUN_DIR:-.cache/run}
registry_addr=${REGISTRY_ADDR:-localhost:5000}
dir=${REGISTRY_DIR:-.cache/registry}
reg=.cache/bin/registry3
[ -x "$reg" ] || { echo "registry: $reg is missing: scripts/install-tools.sh go builds it" >&2; exit 1; }
[ -x bin/portcullis ] || { echo "registry: bin/portcullis is missing: make build" >&2; exit 1; }

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
# The realm by host name: crane and oras refuse a realm on an IP literal.
realm=http://localhost:${addr##*:}/token
bin/portcullis registry-config -data-dir "$run_dir" -realm "$realm" -out "$dir/trust" >/dev/null
{
  cat <<YAML
# Written by scripts/registry.sh (make registry); see deploy/registry/config-3.yml.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $registry_addr
YAML
  cat "$dir/trust/auth-token.yml"
} >"$dir/config.yml"
echo "registry: distribution $(cat .cache/bin/.registry3.version 2>/dev/null || echo 3.x) on http://$registry_addr, realm $realm, config $dir/config.yml" >&2
# The registry reads every REGISTRY_* variable as a config override (REGISTRY_ADDR, podman's
# REGISTRY_AUTH_FILE): it gets only the file.
for v in $(compgen -e | grep '^REGISTRY_' || true); do unset "$v"; done
exec "$reg" serve "$dir/config.yml"
