variable "name" {
  description = "Name prefix for the KMS alias and the broker's IAM role (e.g. attest-broker-prod)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9+=,.@_-]{0,47}$", var.name))
    error_message = "name must be 1-48 characters of [A-Za-z0-9+=,.@_-] (IAM role name rules, room for suffixes)."
  }
}

variable "clusters" {
  description = "Cluster names the broker releases disk keys for: the key policy allows only these values of the attest-broker:cluster encryption context (broker/release/service.ts diskKeyContext)."
  type        = list(string)
  validation {
    condition     = length(var.clusters) > 0 && alltrue([for c in var.clusters : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", c))])
    error_message = "clusters must be a non-empty list of 1-128 characters of [A-Za-z0-9._-]."
  }
}

variable "key_admin_arns" {
  description = "IAM principals that administer the key (policy, rotation, deletion) but cannot use it. There is deliberately no account-root statement: it would let any IAM policy in the account grant kms:Decrypt without the attestation conditions."
  type        = list(string)
  validation {
    condition     = length(var.key_admin_arns) > 0 && alltrue([for a in var.key_admin_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$", a))])
    error_message = "key_admin_arns must be a non-empty list of IAM role or user ARNs."
  }
}

variable "nitrotpm_pcrs" {
  description = "NitroTPM PCR index => expected SHA-384 value (96 lower-case hex) for the key policy conditions kms:RecipientAttestation:NitroTPMPCR<n>: GenerateDataKey and Decrypt succeed only with a Recipient attestation document whose PCRs equal these. Take them from `attest-broker policy capture` on your node image (PCR 4 boot chain, 7 Secure Boot policy are typical)."
  type        = map(string)
  validation {
    condition     = length(var.nitrotpm_pcrs) > 0 && alltrue([for k, v in var.nitrotpm_pcrs : can(regex("^([0-9]|1[0-9]|2[0-3])$", k)) && can(regex("^[0-9a-f]{96}$", v))])
    error_message = "nitrotpm_pcrs must map PCR indexes 0-23 to 96 lower-case hex digits (SHA-384), and must not be empty."
  }
}

variable "recipient_principal_arns" {
  description = "Further IAM principals (e.g. the node instance role, when nodes call KMS themselves) allowed Decrypt/GenerateDataKey under the same NitroTPM PCR conditions. The broker role is always included."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.recipient_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", a))])
    error_message = "recipient_principal_arns must be IAM role ARNs."
  }
}

variable "allow_plain_decrypt" {
  description = "Also let the broker call Decrypt WITHOUT an attestation document (still bound to the disk-key encryption context and the clusters). Needed only when non-NitroTPM nodes share this key; it lets a compromised broker obtain their keys in plaintext (docs/release.md). Prefer a separate key for such fleets."
  type        = bool
  default     = false
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion takes effect (7-30 days)."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30 && floor(var.deletion_window_in_days) == var.deletion_window_in_days
    error_message = "deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "identity_mode" {
  description = "How the broker's pod gets the role: irsa (IAM roles for service accounts: OIDC trust, ServiceAccount annotation) or pod-identity (EKS Pod Identity association; needs the eks-pod-identity-agent add-on)."
  type        = string
  default     = "irsa"
  validation {
    condition     = contains(["irsa", "pod-identity"], var.identity_mode)
    error_message = "identity_mode must be irsa or pod-identity."
  }
}

variable "oidc_provider_arn" {
  description = "irsa: ARN of the cluster's IAM OIDC provider (aws_iam_openid_connect_provider.arn or the EKS module's oidc_provider_arn). Ignored for pod-identity."
  type        = string
  default     = ""
  validation {
    condition     = var.oidc_provider_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[A-Za-z0-9./_-]+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be empty or an IAM OIDC provider ARN."
  }
}

variable "eks_cluster_name" {
  description = "pod-identity: the EKS cluster name for the Pod Identity association. Ignored for irsa."
  type        = string
  default     = ""
  validation {
    condition     = var.eks_cluster_name == "" || can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.eks_cluster_name))
    error_message = "eks_cluster_name must be empty or a valid EKS cluster name."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the broker's ServiceAccount."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "service_account" {
  description = "Name of the broker's Kubernetes ServiceAccount."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.service_account))
    error_message = "service_account must be a DNS-1123 subdomain."
  }
}

variable "tags" {
  description = "Tags for the key and the role."
  type        = map(string)
  default     = {}
}
