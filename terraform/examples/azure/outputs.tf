output "broker_client_id" {
  description = "Client id of the broker's managed identity."
  value       = module.iam.client_id
}

output "node_custom_data" {
  description = "custom_data (base64) for the nodes' VM scale set."
  value       = module.user_data.user_data_base64
}
