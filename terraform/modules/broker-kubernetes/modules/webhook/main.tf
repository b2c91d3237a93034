# The API server's side of the broker's webhook mode (docs/release.md "The TokenReview webhook"):
# per cluster the kubeconfig of --authentication-token-webhook-config-file and the flags, and the
# broker's side of the same credentials (release.tokenReview.callers: only the SHA-256 of each
# bearer token, so no secret reaches the broker's ConfigMap).

locals {
  url   = "${var.server}/v1/tokenreview"
  certs = regexall("-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE-----", var.serving_chain_pem)
  ca    = "${local.certs[length(local.certs) - 1]}\n"
  # The names and digests are not secret; the tokens are.
  token_clusters = nonsensitive(keys(var.bearer_tokens))
  digests        = { for k in local.token_clusters : k => nonsensitive(sha256(var.bearer_tokens[k])) }
  callers = { for k in var.clusters : k => {
    bearer_token_sha256 = contains(local.token_clusters, k) ? [local.digests[k]] : []
    client_common_names = lookup(var.client_common_names, k, [])
  } }
  kubeconfigs = { for k in var.clusters : k => yamlencode({
    apiVersion = "v1"
    kind       = "Config"
    clusters   = [{ name = "attest-broker", cluster = { server = local.url, "certificate-authority-data" = base64encode(local.ca) } }]
    users = [{ name = "kube-apiserver", user = merge(
      { for a, v in { token = try(var.bearer_tokens[k], null) } : a => v if v != null },
      { for a, v in { "client-certificate" = "${var.apiserver_dir}/apiserver-client.crt", "client-key" = "${var.apiserver_dir}/apiserver-client.key" } : a => v if contains(keys(var.client_common_names), k) },
    ) }]
    contexts          = [{ name = "webhook", context = { cluster = "attest-broker", user = "kube-apiserver" } }]
    "current-context" = "webhook"
  }) }
}
