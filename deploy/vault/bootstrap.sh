#!/usr/bin/env bash
# Prepares a dev Vault for Portcullis: transit engine, signing key and x5c root key, a KV v2
# engine for the x5c certificates, the least-privilege policies, and credentials for the two
# identities: the signer (serves tokens) and the x5c certifier (the only one that may sign
# with the root key).
#   VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root deploy/vault/bootstrap.sh [OUT_DIR]
# Writes OUT_DIR/signer-token, role-id, secret-id (the signer) and certifier-token,
# certifier-role-id, certifier-secret-id (the certifier).
# Rotation through Portcullis (`portcullis keys rotate`) is opt-in: with
# PORTCULLIS_VAULT_ROTATE=1 the signer's token and its AppRole both get portcullis-rotate
# (deploy/vault/portcullis-rotate.hcl); without it neither does (rotate in Vault itself:
# vault write -f transit/keys/KEY/rotate). The policy is written either way.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.portcullis/vault}
key=${PORTCULLIS_VAULT_KEY:-portcullis}
key_type=${PORTCULLIS_VAULT_KEY_TYPE:-ecdsa-p256}
x5c_path=${PORTCULLIS_X5C_PATH:-portcullis/x5c}   # signer.key.config.x5c.store.path (mount: secret)
case ${PORTCULLIS_VAULT_ROTATE:-} in
  1 | true | yes) signer_policies=portcullis-signer,portcullis-rotate ;;
  "" | 0 | false | no) signer_policies=portcullis-signer ;;
  *) echo "bootstrap: PORTCULLIS_VAULT_ROTATE must be 1 or 0, not \"$PORTCULLIS_VAULT_ROTATE\"" >&2; exit 2 ;;
esac
mkdir -p "$out"
chmod 700 "$out"

# Listed first, then searched: with pipefail, `vault … | grep -q` fails when grep stops reading early.
mounts=$(vault secrets list -format=json)
grep -q '"transit/"' <<<"$mounts" || vault secrets enable transit
grep -q '"secret/"' <<<"$mounts" || vault secrets enable -path=secret kv-v2
# A new KV v2 mount answers only once it has set itself up.
for _ in $(seq 50); do vault read secret/config >/dev/null 2>&1 && break; sleep 0.2; done
vault read "transit/keys/$key" >/dev/null 2>&1 || vault write -f "transit/keys/$key" type="$key_type"
vault read "transit/keys/$key-root" >/dev/null 2>&1 || vault write -f "transit/keys/$key-root" type=ecdsa-p256

names="s#portcullis-root#$key-root#; s#transit/\(sign\|keys\)/portcullis\"#transit/\1/$key\"#; s#secret/data/portcullis/x5c#secret/data/$x5c_path#"
sed "$names" "$here/portcullis.hcl" | vault policy write portcullis-signer -
sed "$names" "$here/portcullis-certifier.hcl" | vault policy write portcullis-certifier -
sed "s#transit/keys/portcullis/#transit/keys/$key/#" "$here/portcullis-rotate.hcl" | vault policy write portcullis-rotate -

# The signer's token and AppRole carry the same policies: one identity, however it logs in.
policy_flags=()
for p in ${signer_policies//,/ }; do policy_flags+=("-policy=$p"); done
vault token create "${policy_flags[@]}" -period=24h -field=token > "$out/signer-token"
vault token create -policy=portcullis-certifier -period=24h -field=token > "$out/certifier-token"

auths=$(vault auth list -format=json)
grep -q '"approle/"' <<<"$auths" || vault auth enable approle
vault write auth/approle/role/portcullis-signer token_policies="$signer_policies" token_ttl=1h token_max_ttl=24h
vault read -field=role_id auth/approle/role/portcullis-signer/role-id > "$out/role-id"
vault write -f -field=secret_id auth/approle/role/portcullis-signer/secret-id > "$out/secret-id"
vault write auth/approle/role/portcullis-certifier token_policies=portcullis-certifier token_ttl=1h token_max_ttl=24h
vault read -field=role_id auth/approle/role/portcullis-certifier/role-id > "$out/certifier-role-id"
vault write -f -field=secret_id auth/approle/role/portcullis-certifier/secret-id > "$out/certifier-secret-id"
chmod 600 "$out"/*
echo "bootstrap: key transit/keys/$key ($key_type), x5c root transit/keys/$key-root, certificates at secret/data/$x5c_path"
echo "  signer:    token $out/signer-token; AppRole $out/role-id, $out/secret-id (policies $signer_policies)"
echo "  certifier: token $out/certifier-token; AppRole $out/certifier-role-id, $out/certifier-secret-id"
echo "  then: portcullis keys certify -config FILE -vault-token-file $out/certifier-token"
