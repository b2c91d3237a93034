output "namespace" {
  description = "The broker's namespace (pass to cluster-rbac's approver_namespace)."
  value       = local.namespace
}

output "service_account" {
  description = "The broker's ServiceAccount as {name, namespace} (cluster-rbac's broker_subject)."
  value       = { kind = "ServiceAccount", name = kubernetes_service_account_v1.broker.metadata[0].name, namespace = local.namespace }
}

output "service_name" {
  description = "Name of the broker's Service (point your internal load balancer / DNS at it)."
  value       = kubernetes_service_v1.broker.metadata[0].name
}

output "config_yaml" {
  description = "The config.yaml the broker runs with (no secrets in it: the Redis password reaches the pod through the environment)."
  value       = local.config_yaml
}

output "release_mode" {
  description = "The broker's release.mode (pass the same to cluster-rbac's release_mode)."
  value       = var.release_mode
}

output "webhook_url" {
  description = "webhook mode: the URL the API servers call (webhook_server + /v1/tokenreview); null in secret mode."
  value       = local.webhook ? module.webhook[0].url : null
}

output "webhook_ca_pem" {
  description = "webhook mode: the CA the API servers trust for the webhook (the last certificate of the serving chain); null in secret mode."
  value       = local.webhook ? module.webhook[0].ca_pem : null
}

output "webhook_kubeconfigs" {
  description = "webhook mode: cluster name => the kubeconfig for that cluster's kube-apiserver --authentication-token-webhook-config-file (put it at <webhook_apiserver_dir>/<cluster>.kubeconfig on every control-plane node); it holds the bearer token. {} in secret mode."
  value       = local.webhook ? module.webhook[0].kubeconfigs : {}
  sensitive   = true
}

output "kube_apiserver_args" {
  description = "webhook mode: cluster name => the kube-apiserver flags enabling the webhook (kubeadm ClusterConfiguration apiServer.extraArgs; mount webhook_apiserver_dir with apiServer.extraVolumes). {} in secret mode."
  value       = local.webhook ? module.webhook[0].kube_apiserver_args : {}
}
