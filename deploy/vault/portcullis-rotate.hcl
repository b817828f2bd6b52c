# For whoever rotates the signing key (`portcullis keys rotate` runs with the signer's own
# token, so attach this to the signer only if admins rotate through Portcullis).
path "transit/keys/portcullis/rotate" {
  capabilities = ["update"]
}
