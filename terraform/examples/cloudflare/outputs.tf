output "worker" {
  description = "The Worker's name."
  value       = module.broker.script_name
}

output "user_data" {
  description = "cloud-config for the GCE nodes (metadata user-data)."
  value       = module.user_data.user_data
}
