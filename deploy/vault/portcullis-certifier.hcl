# The x5c certifier (`portcullis keys certify`), the only identity that signs with the root
# transit key: it makes the root certificate once and a short-lived leaf certificate for each
# signing key version, and writes them where the signers read them. Give it its own token or
# AppRole, never the signer's (portcullis.hcl).
# Replace "portcullis-root", "portcullis" and "secret/data/portcullis/x5c" to match
# x5c.root_key, key and x5c.store (bootstrap.sh does).
path "transit/sign/portcullis-root" {
  capabilities = ["update"]
}
path "transit/keys/portcullis-root" {
  capabilities = ["read"]
}
path "transit/keys/portcullis" {
  capabilities = ["read"]
}
path "secret/data/portcullis/x5c" {
  capabilities = ["create", "read", "update"]
}
# Who this token is: compared with the signer's (same token, entity or policies are refused).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
# The certifier checks at startup that it may sign with the root key: an identity that may
# not is not the certifier's (Vault's default policy grants this too).
path "sys/capabilities-self" {
  capabilities = ["update"]
}
