#!/usr/bin/env bash
# Brings docker-compose.yml up (scripts/compose-up.sh: images, certificates, Vault, PostgreSQL),
# gets a token through the gateway, and checks the signer's admin API (its published port):
# served to the admin certificate with the bearer secret, refused to a plaintext client and to
# the gateway's certificate; then a refresh token from an offline login works until
# `portcullis sessions revoke` on authn's admin API ends it. Tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "compose-smoke: neither 'docker compose' nor docker-compose is installed" >&2
  exit 1
fi
export COMPOSE_PROJECT_NAME=portcullis-smoke
certs=deploy/compose/certs
bin=bin/portcullis

fail() {
  echo "compose-smoke: FAIL: $*" >&2
  "${compose[@]}" logs --no-color --tail=40 >&2 || true
  exit 1
}
trap '"${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true' EXIT

scripts/compose-up.sh || fail "compose-up"
signer_admin=$("${compose[@]}" port signer 7004)
authn_admin=$("${compose[@]}" port authn 7004)
ready=$(curl -s http://localhost:5001/readyz) || fail "gateway not reachable"
echo "readyz: $ready"
[ "$(jq -r .ready <<<"$ready")" = true ] || fail "gateway not ready"

answer=$(curl -s -u alice:alice 'http://localhost:5001/token?service=registry.local&scope=repository:alice/app:pull,push&scope=repository:bob/app:pull')
token=$(jq -r .token <<<"$answer")
[ -n "$token" ] && [ "$token" != null ] || fail "no token for alice: $answer"
claims=$(cut -d. -f2 <<<"$token" | tr '_-' '/+' | base64 -d 2>/dev/null || true)
echo "alice's token claims: $claims"
grep -q '"alice/app"' <<<"$claims" || fail "alice's token does not grant alice/app"
! grep -q '"bob/app"' <<<"$claims" || fail "alice's token grants bob/app"

admin() { # cert-role, then extra flags
  local role=$1; shift
  local tls=()
  if [ "$role" != plaintext ]; then tls=(-tls-ca "$certs/ca.pem" -tls-cert "$certs/$role.pem" -tls-key "$certs/$role-key.pem"); fi
  "$bin" keys list -addr "$signer_admin" -admin-token-file "$certs/admin-token" "${tls[@]}" "$@"
}
admin admin || fail "keys list with the admin certificate"
if admin gateway 2>/dev/null; then fail "the admin API served the gateway's certificate"; fi
if admin plaintext 2>/dev/null; then fail "the admin API served a plaintext client"; fi

# Sessions: an offline login's refresh token works until the session admin API (authn's admin
# listener, on its published port) revokes it.
login=$(curl -s -u alice:alice 'http://localhost:5001/token?service=registry.local&offline_token=true&client_id=docker')
refresh=$(jq -r .refresh_token <<<"$login")
[[ "$refresh" == pcr_* ]] || fail "offline login gave no refresh token: $(jq -c 'del(.token, .access_token, .refresh_token)' <<<"$login")"
refresh_status() {
  curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$refresh" \
    --data-urlencode client_id=docker --data-urlencode service=registry.local \
    --data-urlencode 'scope=repository:alice/app:pull' http://localhost:5001/token
}
[ "$(refresh_status)" = 200 ] || fail "the refresh grant was refused"
sessions=(-addr "$authn_admin" -admin-token-file "$certs/admin-token" -tls-ca "$certs/ca.pem" -tls-cert "$certs/admin.pem" -tls-key "$certs/admin-key.pem")
"$bin" sessions list "${sessions[@]}" -user alice | grep -q alice || fail "sessions list does not show alice's session"
"$bin" sessions revoke "${sessions[@]}" -user alice || fail "sessions revoke"
[ "$(refresh_status)" = 400 ] || fail "a revoked refresh token still works"
echo "compose-smoke: OK"
