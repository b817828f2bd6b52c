# For whoever rotates the signing key. `portcullis keys rotate` asks the signer's admin API,
# which rotates with the signer's own token: attach this to the signer only if admins rotate
# through Portcullis. In x5c mode the new version signs once the certifier has certified it.
path "transit/keys/portcullis/rotate" {
  capabilities = ["update"]
}
