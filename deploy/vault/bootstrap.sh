#!/usr/bin/env bash
# Prepares a dev Vault for Portcullis: transit engine, signing key (and x5c root key),
# least-privilege policy, and a token or AppRole credentials for the signer.
#   VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root deploy/vault/bootstrap.sh [OUT_DIR]
# Writes OUT_DIR/signer-token (and approle role-id / secret-id files).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.portcullis/vault}
key=${PORTCULLIS_VAULT_KEY:-portcullis}
key_type=${PORTCULLIS_VAULT_KEY_TYPE:-ecdsa-p256}
mkdir -p "$out"
chmod 700 "$out"

vault secrets list -format=json | grep -q '"transit/"' || vault secrets enable transit
vault read "transit/keys/$key" >/dev/null 2>&1 || vault write -f "transit/keys/$key" type="$key_type"
vault read "transit/keys/$key-root" >/dev/null 2>&1 || vault write -f "transit/keys/$key-root" type=ecdsa-p256

sed "s#transit/\(sign\|keys\)/portcullis#transit/\1/$key#" "$here/portcullis.hcl" | vault policy write portcullis-signer -
sed "s#portcullis-root#$key-root#" "$here/portcullis-x5c.hcl" | vault policy write portcullis-signer-x5c -
sed "s#transit/keys/portcullis/#transit/keys/$key/#" "$here/portcullis-rotate.hcl" | vault policy write portcullis-rotate -

vault token create -policy=portcullis-signer -policy=portcullis-signer-x5c -policy=portcullis-rotate \
  -period=24h -field=token > "$out/signer-token"

vault auth list -format=json | grep -q '"approle/"' || vault auth enable approle
vault write auth/approle/role/portcullis-signer token_policies=portcullis-signer,portcullis-signer-x5c token_ttl=1h token_max_ttl=24h
vault read -field=role_id auth/approle/role/portcullis-signer/role-id > "$out/role-id"
vault write -f -field=secret_id auth/approle/role/portcullis-signer/secret-id > "$out/secret-id"
chmod 600 "$out"/*
echo "bootstrap: key transit/keys/$key ($key_type); token in $out/signer-token; AppRole ids in $out/role-id, $out/secret-id"
