# Renders the broker's config.yaml (docs/configuration.md) for broker-kubernetes. Paths are the
# ones broker-kubernetes mounts: config and policy at /etc/attest-broker/, the TLS Secret at
# /etc/attest-broker/tls/, the trust directory the trust-fetch init container fills.

locals {
  config = {
    apiVersion = "attest-broker/v1"
    listen = merge(
      { host = "0.0.0.0", port = var.port },
      var.tls ? { tls = { certFile = "/etc/attest-broker/tls/tls.crt", keyFile = "/etc/attest-broker/tls/tls.key" } } : {},
      length(var.trusted_proxies) > 0 ? { trustedProxies = var.trusted_proxies } : {},
    )
    challenge = { ttlSeconds = var.challenge_ttl_seconds }
    store     = { url = var.store_url, keyPrefix = "attest-broker:" }
    trust     = { dir = "/var/lib/attest-broker/trust" }
    providers = { for p in ["tpm", "azure", "gcp", "aws"] : p => { enabled = contains(var.providers_enabled, p) } }
    policy    = { file = "/etc/attest-broker/policy.yaml", watch = true }
    release = merge(
      {
        mode     = "secret"
        clusters = { for name, api in var.clusters : name => { apiServer = api, kube = { inCluster = true } } }
        approver = { enabled = var.approver }
      },
      var.kms == null ? {} : { kms = var.kms },
    )
    log = { level = var.log_level }
  }
}
