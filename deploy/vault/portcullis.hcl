# Least privilege for the Portcullis signer: sign with its transit key and read the key's
# public versions. Nothing else: the private key never leaves Vault, and this token cannot
# rotate, export or delete it. Replace "portcullis" if signer.key.config.key differs.
path "transit/sign/portcullis" {
  capabilities = ["update"]
}
path "transit/keys/portcullis" {
  capabilities = ["read"]
}
