# Least privilege for the Portcullis signer, the identity that serves tokens: sign with its
# transit key, read the key's public versions and, in x5c mode, READ the certificates that
# the certifier stored. Nothing else: it cannot sign with the x5c root key, write
# certificates, rotate, export or delete, so a stolen token certifies nothing.
# Replace "portcullis" if signer.key.config.key differs, and "secret/data/portcullis/x5c" if
# x5c.store differs (bootstrap.sh does both).
path "transit/sign/portcullis" {
  capabilities = ["update"]
}
path "transit/keys/portcullis" {
  capabilities = ["read"]
}
path "secret/data/portcullis/x5c" {
  capabilities = ["read"]
}
# In x5c mode the signer checks at startup that it cannot sign with the root key, and refuses
# to start if it can (Vault's default policy grants this too).
path "sys/capabilities-self" {
  capabilities = ["update"]
}
# Who this token is (entity, policies): the certifier compares it with its own to refuse the
# signer's identity under another name (Vault's default policy grants this too).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
