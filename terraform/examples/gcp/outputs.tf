output "crypto_key_id" {
  description = "The disk-key Cloud KMS key."
  value       = module.iam.crypto_key_id
}

output "broker_service_account_email" {
  description = "The broker's Google service account."
  value       = module.iam.service_account_email
}

output "instance_template" {
  description = "Instance template for the attested nodes (use it in a managed instance group)."
  value       = google_compute_instance_template.nodes.self_link
}

output "broker_config_yaml" {
  description = "The config.yaml the broker runs with."
  value       = module.broker.config_yaml
}
