# For whoever rotates the signing key. `portcullis keys rotate` asks the signer's admin API,
# which rotates with the signer's own Vault identity. Rotation through Portcullis is opt-in:
# attach this to the signer's token and to its AppRole (or Kubernetes role) alike, or to
# neither and rotate in Vault (vault write -f transit/keys/portcullis/rotate).
# deploy/vault/bootstrap.sh attaches it to both with PORTCULLIS_VAULT_ROTATE=1, to neither
# without. In x5c mode the new version signs once the certifier has certified it.
path "transit/keys/portcullis/rotate" {
  capabilities = ["update"]
}
