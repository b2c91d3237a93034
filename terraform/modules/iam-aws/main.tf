# terraform/modules/iam-aws — the disk-key KMS key and the broker's workload identity on EKS.
#
# Key policy (no account-root statement, so IAM policies cannot widen it):
# - admins manage the key but cannot use it;
# - the broker role may Encrypt (wrap) only under the disk-key encryption context of its clusters;
# - GenerateDataKey and Decrypt are allowed to the broker role (and recipient_principal_arns) only
#   with a NitroTPM Recipient attestation document whose PCRs equal nitrotpm_pcrs: KMS returns
#   CiphertextForRecipient and no plaintext, so the broker never sees the key (docs/release.md).
# Condition keys: https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-tpm.html
# (kms:RecipientAttestation:NitroTPMPCR<n>; ImageSha384/PCR<n> are the Nitro Enclaves keys, not
# NitroTPM's) and kms:EncryptionContext:<key>.

locals {
  issuer          = var.oidc_provider_arn == "" ? "" : element(split("oidc-provider/", var.oidc_provider_arn), 1)
  context_purpose = "kms:EncryptionContext:attest-broker:purpose"
  context_cluster = "kms:EncryptionContext:attest-broker:cluster"
  # Not kms:Create*: it includes CreateGrant, and a grant would let an admin Decrypt without the
  # attestation conditions. PutKeyPolicy stays (someone must be able to change the policy; it is
  # logged in CloudTrail), so key admins are trusted with the policy, not with key material.
  admin_actions  = ["kms:CreateAlias", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"]
  recipient_arns = concat([aws_iam_role.broker.arn], var.recipient_principal_arns)
  sa_subject     = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

data "aws_iam_policy_document" "trust" {
  dynamic "statement" {
    for_each = var.identity_mode == "irsa" ? [1] : []
    content {
      sid     = "IrsaWebIdentity"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.issuer}:sub"
        values   = [local.sa_subject]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.identity_mode == "pod-identity" ? [1] : []
    content {
      sid     = "EksPodIdentity"
      effect  = "Allow"
      actions = ["sts:AssumeRole", "sts:TagSession"]
      principals {
        type        = "Service"
        identifiers = ["pods.eks.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "broker" {
  name                 = "${var.name}-broker"
  description          = "attest-broker (${var.namespace}/${var.service_account}): wraps disk keys with ${var.name} KMS key"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.identity_mode != "irsa" || var.oidc_provider_arn != ""
      error_message = "identity_mode = irsa needs oidc_provider_arn."
    }
    precondition {
      condition     = var.identity_mode != "pod-identity" || var.eks_cluster_name != ""
      error_message = "identity_mode = pod-identity needs eks_cluster_name."
    }
  }
}

resource "aws_eks_pod_identity_association" "broker" {
  count           = var.identity_mode == "pod-identity" ? 1 : 0
  cluster_name    = var.eks_cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.broker.arn
  tags            = var.tags
}

data "aws_iam_policy_document" "key" {
  statement {
    sid       = "KeyAdministrationNoUse"
    effect    = "Allow"
    actions   = local.admin_actions
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = var.key_admin_arns
    }
  }

  statement {
    sid       = "BrokerWrapsDiskKeysOfItsClusters"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.broker.arn]
    }
    condition {
      test     = "StringEquals"
      variable = local.context_purpose
      values   = ["disk-key"]
    }
    condition {
      test     = "StringEquals"
      variable = local.context_cluster
      values   = var.clusters
    }
  }

  statement {
    sid       = "KeysOnlyToAttestedNitroTPM"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = local.recipient_arns
    }
    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "kms:RecipientAttestation:NitroTPMPCR${keys(var.nitrotpm_pcrs)[0]}"
      values   = [var.nitrotpm_pcrs[keys(var.nitrotpm_pcrs)[0]]]
    }
    dynamic "condition" {
      for_each = { for k, v in var.nitrotpm_pcrs : k => v if k != keys(var.nitrotpm_pcrs)[0] }
      content {
        test     = "StringEqualsIgnoreCase"
        variable = "kms:RecipientAttestation:NitroTPMPCR${condition.key}"
        values   = [condition.value]
      }
    }
    condition {
      test     = "StringEquals"
      variable = local.context_purpose
      values   = ["disk-key"]
    }
    condition {
      test     = "StringEquals"
      variable = local.context_cluster
      values   = var.clusters
    }
  }

  dynamic "statement" {
    for_each = var.allow_plain_decrypt ? [1] : []
    content {
      sid       = "BrokerPlainDecryptNonNitroFleets"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = [aws_iam_role.broker.arn]
      }
      condition {
        test     = "StringEquals"
        variable = local.context_purpose
        values   = ["disk-key"]
      }
      condition {
        test     = "StringEquals"
        variable = local.context_cluster
        values   = var.clusters
      }
    }
  }
}

resource "aws_kms_key" "disk" {
  description              = "attest-broker disk keys (${var.name}): released only to attested nodes"
  key_usage                = "ENCRYPT_DECRYPT"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  enable_key_rotation      = true
  deletion_window_in_days  = var.deletion_window_in_days
  policy                   = data.aws_iam_policy_document.key.json
  tags                     = var.tags
}

resource "aws_kms_alias" "disk" {
  name          = "alias/${var.name}-disk-keys"
  target_key_id = aws_kms_key.disk.key_id
}
