# Renders the broker's config.yaml (docs/configuration.md) for broker-kubernetes and (a byte copy)
# broker-offcluster. Paths are under var.config_dir (default /etc/attest-broker, where
# broker-kubernetes mounts its ConfigMap): config and policy at <config_dir>/, the TLS files at
# <config_dir>/tls/, the webhook's at <config_dir>/webhook/, kubeconfigs at <config_dir>/kube/.

locals {
  dir = trimsuffix(var.config_dir, "/")
  # release.clusters.<name>.kube: the in-cluster service account, or a kubeconfig per cluster.
  # (`{ for … if … }` rather than `cond ? {…} : {}`: the two sides of a conditional must have the
  # same object type.)
  kube = { for name, api in var.clusters : name => merge(
    { for k, v in { inCluster = true } : k => v if length(var.kubeconfigs) == 0 },
    { for k, v in { kubeconfig = "${local.dir}/kube/${name}.kubeconfig" } : k => v if length(var.kubeconfigs) > 0 },
    { for k, v in { context = try(var.kubeconfigs[name].context, null) } : k => v if v != null },
  ) }
  webhook = var.release_mode == "webhook"
  # release.tokenReview (webhook mode): a listener of its own with TLS, and per cluster the
  # credentials of the API server that may ask (the SHA-256 of its bearer token, so no secret is
  # in the ConfigMap, and/or the common names of its client certificates).
  token_review = !local.webhook ? null : {
    listen = {
      host = "0.0.0.0"
      port = var.token_review.port
      tls = merge(
        { certFile = "${local.dir}/webhook/tls.crt", keyFile = "${local.dir}/webhook/tls.key" },
        var.token_review.client_ca ? { clientCaFile = "${local.dir}/webhook/client-ca.crt" } : {},
      )
    }
    callers = { for name, c in var.token_review.callers : name => merge(
      length(c.bearer_token_sha256) > 0 ? { bearerTokenSha256 = c.bearer_token_sha256 } : {},
      length(c.client_common_names) > 0 ? { clientCertificateCommonNames = c.client_common_names } : {},
    ) }
    maxReviewsPerToken = var.token_review.max_reviews_per_token
  }
  config = {
    apiVersion = "attest-broker/v1"
    listen = merge(
      { host = "0.0.0.0", port = var.port },
      var.tls ? { tls = { certFile = "${local.dir}/tls/tls.crt", keyFile = "${local.dir}/tls/tls.key" } } : {},
      length(var.trusted_proxies) > 0 ? { trustedProxies = var.trusted_proxies } : {},
    )
    challenge = { ttlSeconds = var.challenge_ttl_seconds }
    store     = { url = var.store_url, keyPrefix = "attest-broker:" }
    trust     = { dir = var.trust_dir }
    providers = { for p in ["tpm", "azure", "gcp", "aws"] : p => { enabled = contains(var.providers_enabled, p) } }
    policy    = { file = "${local.dir}/policy.yaml", watch = true }
    release = merge(
      {
        mode     = var.release_mode
        clusters = { for name, api in var.clusters : name => { apiServer = api, kube = local.kube[name] } }
        approver = { enabled = var.approver }
      },
      var.kms == null ? {} : { kms = var.kms },
      { for k, v in { tokenReview = local.token_review } : k => v if local.webhook },
    )
    log = { level = var.log_level }
  }
}
