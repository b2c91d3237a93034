output "user_data" {
  description = "cloud-config text for the node pool (Azure custom_data needs base64: use user_data_base64)."
  value       = local.rendered
}

output "user_data_base64" {
  description = "user_data, base64-encoded."
  value       = base64encode(local.rendered)
}

output "user_data_multipart" {
  description = "MIME multipart/mixed user-data: the attest-broker cloud-config part, then the kubeadm hook (kubeadm_join) and extra_parts. cloud-init merges cloud-config parts by their Merge-Type; other content types pass through to their handlers (e.g. nodeadm on EKS AL2023)."
  value       = local.multipart
}

output "user_data_multipart_base64" {
  description = "user_data_multipart, base64-encoded (aws_launch_template.user_data, azurerm custom_data)."
  value       = base64encode(local.multipart)
}

output "cloudinit_parts" {
  description = "The same parts as objects shaped like the hashicorp/cloudinit provider's cloudinit_config part block ({content_type, content, filename, merge_type}), for a data \"cloudinit_config\" with a dynamic \"part\" when you compose user-data there instead."
  value       = [for p in local.parts : { content_type = p.content_type, content = p.content, filename = p.filename, merge_type = p.merge_type }]
}

output "ca_pin" {
  description = "The CA pin written into the user-data (sha256 of the CA's DER SubjectPublicKeyInfo)."
  value       = var.ca_pin
}
