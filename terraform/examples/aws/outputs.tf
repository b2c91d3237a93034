output "kms_key_arn" {
  description = "The disk-key KMS key."
  value       = module.iam.key_arn
}

output "broker_role_arn" {
  description = "The broker's IRSA role."
  value       = module.iam.role_arn
}

output "launch_template_id" {
  description = "Launch template for the attested nodes (use it in your Auto Scaling group)."
  value       = aws_launch_template.nodes.id
}

output "token_group" {
  description = "Group of the broker's bootstrap tokens, bound by cluster-rbac."
  value       = module.rbac.token_group
}
