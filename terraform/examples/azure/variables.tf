variable "subscription_id" {
  description = "Azure subscription id."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a lower-case GUID."
  }
}

variable "resource_group_name" {
  description = "Resource group of the AKS cluster and the broker's managed identity."
  type        = string
  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 characters of letters, digits, _ - . ( )."
  }
}

variable "aks_cluster_name" {
  description = "AKS cluster (OIDC issuer and workload identity enabled) the broker runs in."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$", var.aks_cluster_name))
    error_message = "aks_cluster_name must be an AKS cluster name."
  }
}

variable "key_vault_id" {
  description = "Key Vault (RBAC authorization enabled) for the disk-key key."
  type        = string
  validation {
    condition     = can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.KeyVault/vaults/[A-Za-z0-9-]{3,24}$", var.key_vault_id))
    error_message = "key_vault_id must be a Key Vault resource id."
  }
}

variable "cluster" {
  description = "Cluster name (policy and release.clusters)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.cluster))
    error_message = "cluster must be a DNS-1123 label."
  }
}

variable "api_server_url" {
  description = "The API server URL as the nodes reach it."
  type        = string
  validation {
    condition     = can(regex("^https://", var.api_server_url))
    error_message = "api_server_url must be an https:// URL."
  }
}

variable "snp_measurements" {
  description = "Allowed SEV-SNP launch measurements (96 hex) of the node CVM image."
  type        = list(string)
  validation {
    condition     = length(var.snp_measurements) > 0 && alltrue([for m in var.snp_measurements : can(regex("^[0-9a-f]{96}$", m))])
    error_message = "snp_measurements must be a non-empty list of 96 lower-case hex digits."
  }
}

variable "system_node_pool" {
  description = "AKS node pool the broker runs on (agentpool label)."
  type        = string
  default     = "system"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,11}$", var.system_node_pool))
    error_message = "system_node_pool must be an AKS node pool name."
  }
}

variable "broker_hostname" {
  description = "DNS name the nodes reach the broker at (the internal load balancer of its Service)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.broker_hostname))
    error_message = "broker_hostname must be a lower-case DNS name."
  }
}

variable "tls_cert_chain_pem" {
  description = "The broker's certificate followed by its CA certificate (PEM)."
  type        = string
  validation {
    condition     = length(regexall("-----BEGIN CERTIFICATE-----", var.tls_cert_chain_pem)) >= 2
    error_message = "tls_cert_chain_pem must hold the leaf and the CA certificate."
  }
}

variable "tls_private_key_pem" {
  description = "The broker certificate's private key (PEM)."
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("-----BEGIN (RSA |EC )?PRIVATE KEY-----", var.tls_private_key_pem))
    error_message = "tls_private_key_pem must be a PEM private key."
  }
}

variable "ca_pin" {
  description = "sha256:<hex> of the broker CA's DER SubjectPublicKeyInfo (see the user-data module README)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.ca_pin))
    error_message = "ca_pin must be sha256: followed by 64 lower-case hex digits."
  }
}
