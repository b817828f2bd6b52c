#!/usr/bin/env bash
# Writes what docker-compose.yml mounts for mutual TLS between the split services:
#   ca.pem                       the CA every service trusts (its key is discarded)
#   ROLE.pem, ROLE-key.pem       per role gateway, authn, authz, signer, admin: a certificate
#                                naming its identity spiffe://portcullis/ROLE (URI SAN), which
#                                is what the services authorise callers by, and its compose
#                                host name ROLE, localhost and 127.0.0.1 (DNS/IP SANs)
#   admin-token                  the admin API's bearer secret (kept across renewals)
# admin.pem is for the operator's `portcullis keys list|rotate` on the host.
#
# Usage: scripts/compose-certs.sh [-f] [DIR]   (DIR defaults to deploy/compose/certs, git-ignored)
# Existing certificates are kept while every one is valid for 30 more days; -f renews them all
# (a new CA: restart the containers afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

force=false
if [ "${1:-}" = "-f" ]; then force=true; shift; fi
dir=${1:-deploy/compose/certs}
roles=(gateway authn authz signer admin)
trust_domain=portcullis
days=90
renew_before=$((30 * 24 * 3600))

command -v openssl >/dev/null || { echo "compose-certs: openssl is required (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077

# fresh: every certificate exists, chains to ca.pem and outlives the renewal margin.
fresh() {
  [ -f "$dir/ca.pem" ] && openssl x509 -checkend "$renew_before" -noout -in "$dir/ca.pem" >/dev/null || return 1
  local r
  for r in "${roles[@]}"; do
    [ -f "$dir/$r.pem" ] && [ -f "$dir/$r-key.pem" ] || return 1
    openssl x509 -checkend "$renew_before" -noout -in "$dir/$r.pem" >/dev/null || return 1
    openssl verify -CAfile "$dir/ca.pem" "$dir/$r.pem" >/dev/null 2>&1 || return 1
  done
}

if [ ! -s "$dir/admin-token" ]; then
  openssl rand -hex 32 >"$dir/admin-token"
  echo "compose-certs: wrote $dir/admin-token"
fi
if ! $force && fresh; then
  echo "compose-certs: certificates in $dir are valid for 30+ days; -f renews them"
  exit 0
fi

# Everything is made in a scratch dir and moved into place at the end, so a failure never
# leaves a mix of two CAs; the CA's key dies with the scratch dir.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -config "$tmp/openssl.cnf" \
  -extensions ca -subj "/CN=Portcullis compose internal CA" -days "$days" \
  -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null

for r in "${roles[@]}"; do
  cat >"$tmp/$r.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:spiffe://$trust_domain/$r, DNS:$r, DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -config "$tmp/openssl.cnf" \
    -subj "/CN=$r" -keyout "$tmp/$r-key.pem" -out "$tmp/$r.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/$r.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/$r.ext" \
    -out "$tmp/$r.pem" 2>/dev/null
done

for r in "${roles[@]}"; do
  mv -f "$tmp/$r.pem" "$tmp/$r-key.pem" "$dir/"
done
mv -f "$tmp/ca.pem" "$dir/ca.pem"
fresh || { echo "compose-certs: the written certificates do not verify" >&2; exit 1; }
echo "compose-certs: wrote a new CA and certificates for ${roles[*]} to $dir (valid $days days)"
