variable "name" {
  description = "Name of the managed identity and prefix of the key (e.g. attest-broker-prod)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{2,62}$", var.name))
    error_message = "name must be 3-63 characters of [A-Za-z0-9-] starting with a letter or digit."
  }
}

variable "resource_group_name" {
  description = "Resource group of the user-assigned managed identity."
  type        = string
  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name)) && !endswith(var.resource_group_name, ".")
    error_message = "resource_group_name must be 1-90 characters of letters, digits, _ - . ( ) and not end with a dot."
  }
}

variable "location" {
  description = "Azure region of the managed identity (e.g. westeurope)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location must be an Azure region name such as westeurope."
  }
}

variable "key_vault_id" {
  description = "Resource id of an existing Key Vault with Azure RBAC authorization enabled (enable_rbac_authorization = true): access is granted by a role assignment on the key, not by an access policy."
  type        = string
  validation {
    condition     = can(regex("^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/[A-Za-z0-9-]{3,24}$", var.key_vault_id))
    error_message = "key_vault_id must be /subscriptions/<uuid>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>."
  }
}

variable "key_type" {
  description = "RSA-HSM (Premium vault or Managed HSM) or RSA: the broker wraps a random content key with RSA-OAEP-256 (providers/azure/keyvault.ts)."
  type        = string
  default     = "RSA-HSM"
  validation {
    condition     = contains(["RSA", "RSA-HSM"], var.key_type)
    error_message = "key_type must be RSA or RSA-HSM."
  }
}

variable "key_size" {
  description = "RSA key size in bits: 3072 or 4096."
  type        = number
  default     = 3072
  validation {
    condition     = contains([3072, 4096], var.key_size)
    error_message = "key_size must be 3072 or 4096."
  }
}

variable "oidc_issuer_url" {
  description = "The AKS cluster's OIDC issuer URL (azurerm_kubernetes_cluster.oidc_issuer_url; the cluster needs oidc_issuer_enabled and workload_identity_enabled)."
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~/-]*)?$", var.oidc_issuer_url))
    error_message = "oidc_issuer_url must be an https:// URL."
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
  description = "Name of the broker's Kubernetes ServiceAccount (the federated credential's subject)."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.service_account))
    error_message = "service_account must be a DNS-1123 subdomain."
  }
}

variable "tags" {
  description = "Tags for the identity and the key."
  type        = map(string)
  default     = {}
}
