# Extra grant for x5c chain mode: the signer certifies each signing key version with the
# root transit key. Attach together with portcullis.hcl.
path "transit/sign/portcullis-root" {
  capabilities = ["update"]
}
path "transit/keys/portcullis-root" {
  capabilities = ["read"]
}
