output "url" {
  description = "The URL the API servers call (server + /v1/tokenreview)."
  value       = local.url
}

output "ca_pem" {
  description = "The CA the API servers trust for the webhook: the last certificate of serving_chain_pem."
  value       = local.ca
}

output "callers" {
  description = "release.tokenReview.callers for the broker's configuration (modules/config token_review.callers): per cluster the SHA-256 of its bearer token and its client common names."
  value       = local.callers
  precondition {
    condition     = alltrue([for k in var.clusters : contains(local.token_clusters, k) || contains(keys(var.client_common_names), k)])
    error_message = "Every cluster needs a bearer token (webhook_bearer_tokens) or client common names (webhook_client_common_names): an unauthenticated webhook is never served."
  }
  precondition {
    condition     = length(setsubtract(concat(local.token_clusters, keys(var.client_common_names)), var.clusters)) == 0
    error_message = "webhook_bearer_tokens and webhook_client_common_names may name only clusters of clusters."
  }
}

output "kubeconfigs" {
  description = "Cluster name => the kubeconfig for its API servers' --authentication-token-webhook-config-file (at <apiserver_dir>/<cluster>.kubeconfig). Holds the bearer token."
  value       = local.kubeconfigs
  sensitive   = true
}

output "kube_apiserver_args" {
  description = "Cluster name => the kube-apiserver flags that enable the webhook (kubeadm: apiServer.extraArgs, with <apiserver_dir> mounted through apiServer.extraVolumes)."
  value = { for k in var.clusters : k => [
    "--authentication-token-webhook-config-file=${var.apiserver_dir}/${k}.kubeconfig",
    "--authentication-token-webhook-version=v1",
    "--authentication-token-webhook-cache-ttl=${var.cache_ttl}",
  ] }
}
