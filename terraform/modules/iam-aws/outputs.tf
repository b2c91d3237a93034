output "key_arn" {
  description = "ARN of the disk-key KMS key (release.kms.keyId: the broker always sends KeyId, so blobs of other keys are refused)."
  value       = aws_kms_key.disk.arn
}

output "role_arn" {
  description = "ARN of the broker's IAM role (for further policies, e.g. a node-side recipient statement elsewhere)."
  value       = aws_iam_role.broker.arn
}

output "service_account_annotations" {
  description = "Annotations for the broker's ServiceAccount: eks.amazonaws.com/role-arn for irsa, none for pod-identity (the association does the binding)."
  value       = var.identity_mode == "irsa" ? { "eks.amazonaws.com/role-arn" = aws_iam_role.broker.arn } : {}
}

output "broker_kms_config" {
  description = "The release.kms block for the broker's config.yaml (docs/configuration.md): kind aws-kms, keyId, region."
  value = {
    kind  = "aws-kms"
    keyId = aws_kms_key.disk.arn
    # Region from the key ARN (arn:<partition>:kms:<region>:<account>:key/<id>).
    region = split(":", aws_kms_key.disk.arn)[3]
  }
}
