output "token_group" {
  description = "The bootstrap-token group these bindings grant to (the one every broker token carries)."
  value       = local.token_group
}

output "broker_username" {
  description = "The Kubernetes username the bindings and the admission policy expect the broker to authenticate as (for a Group subject: the group, which the broker's identity must be a member of)."
  value       = local.username
}
