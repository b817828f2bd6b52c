#!/usr/bin/env bash
# Brings docker-compose.yml up from nothing: images (scripts/compose-images.sh), certificates
# and secrets (scripts/compose-certs.sh, plus the PostgreSQL password), Vault first and
# bootstrapped (deploy/vault/bootstrap.sh: transit key, the signer's least-privilege token),
# the registry's trust files for the Vault key (portcullis registry-config), then the rest,
# SIGNERS signer and AUTHN authn replicas (default 1 each). Waits until the gateway is ready.
# Before anything starts it checks that the host ports it publishes (5000 registry, 5001
# gateway, 7006 authz admin, 8200 Vault) are free — `make run` and `make registry` hold 5001
# and 5000 — and when a step fails it tears down what it started (down --volumes).
# `portcullis keys rotate` works only with PORTCULLIS_VAULT_ROTATE=1, passed on to bootstrap.sh
# (the signer's token then carries portcullis-rotate; without it no signer identity may rotate).
#   COMPOSE_PROJECT_NAME=NAME SIGNERS=3 AUTHN=2 [PORTCULLIS_VAULT_ROTATE=1] scripts/compose-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.cache/bin:$PATH"
certs=deploy/compose/certs
signers=${SIGNERS:-1}
authn=${AUTHN:-1}
compose=(docker-compose)
command -v docker-compose >/dev/null || compose=(docker compose)
hostcfg=""

# The ports docker-compose.yml publishes at fixed numbers. A deployment of this project that
# is already up holds them itself: then `up` below just brings it to this state.
if [ -z "$("${compose[@]}" ps -q 2>/dev/null)" ]; then
  busy=()
  for port in 5000 5001 7006 8200; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=("$port"); fi
  done
  if [ ${#busy[@]} -gt 0 ]; then
    echo "compose-up: port(s) ${busy[*]} on 127.0.0.1 are taken; docker-compose.yml publishes 5000 (registry), 5001 (gateway)," \
      "7006 (authz admin) and 8200 (Vault). Stop what holds them first (make run and make registry use 5001 and 5000). Nothing was started." >&2
    exit 1
  fi
fi

# A failed step leaves nothing running: five half-started containers would hold the ports.
cleanup() {
  local status=$?
  [ -n "$hostcfg" ] && rm -f "$hostcfg"
  if [ "$status" -ne 0 ]; then
    echo "compose-up: failed (exit $status); tearing down what was started" >&2
    "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

scripts/compose-images.sh
scripts/compose-certs.sh
umask 077
if [ ! -s "$certs/pg-password" ]; then
  openssl rand -hex 24 >"$certs/pg-password"
  chmod 644 "$certs/pg-password" # read by the postgres container's user
fi
printf 'postgres://portcullis:%s@postgres:5432/postgres?sslmode=disable\n' "$(cat "$certs/pg-password")" >"$certs/pg-dsn"
chmod 644 "$certs/pg-dsn" # the containers run as a user of their own

"${compose[@]}" up -d vault postgres
export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
for _ in $(seq 60); do vault status >/dev/null 2>&1 && break; sleep 0.5; done
vault status >/dev/null || { echo "compose-up: Vault did not come up" >&2; "${compose[@]}" logs vault >&2; exit 1; }
deploy/vault/bootstrap.sh "$certs/vault" >/dev/null
chmod 644 "$certs/vault/signer-token"

# The registry trusts the Vault key: registry-config reads it through the published port.
hostcfg=$(mktemp)
sed -e 's#address: "http://vault:8200"#address: "http://127.0.0.1:8200"#' \
    -e "s#token_file: /etc/portcullis/secrets/vault-token#token_file: $PWD/$certs/vault/signer-token#" \
    -e "s#dsn_file: /etc/portcullis/secrets/pg-dsn#dsn_file: $PWD/$certs/pg-dsn#" \
    -e "s#/etc/portcullis/htpasswd#$PWD/deploy/compose/htpasswd#" \
    -e "s#/etc/portcullis/tls/tls.pem#$PWD/$certs/gateway.pem#; s#/etc/portcullis/tls/tls-key.pem#$PWD/$certs/gateway-key.pem#; s#/etc/portcullis/tls/ca.pem#$PWD/$certs/ca.pem#" \
    -e "s#/etc/portcullis/secrets/admin-token#$PWD/$certs/admin-token#" \
    deploy/compose/portcullis.yaml >"$hostcfg"
rm -rf "$certs/registry"
bin/portcullis registry-config -config "$hostcfg" -service registry.local -realm http://localhost:5001/token -out "$certs/registry" >/dev/null
chmod 755 "$certs/registry"
chmod 644 "$certs/registry"/*

"${compose[@]}" up -d --scale signer="$signers" --scale authn="$authn"
for _ in $(seq 90); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://localhost:5001/readyz)" = 200 ] && break
  sleep 1
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' http://localhost:5001/readyz)" != 200 ]; then
  echo "compose-up: the gateway is not ready" >&2
  "${compose[@]}" ps >&2
  "${compose[@]}" logs --no-color --tail=30 >&2
  exit 1
fi
echo "compose-up: ready — http://localhost:5001/token, registry localhost:5000 ($signers signer(s), $authn authn)"
