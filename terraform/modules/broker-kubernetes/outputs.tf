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
