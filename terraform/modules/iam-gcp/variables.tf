variable "project_id" {
  description = "GCP project that holds the key ring and the broker's service account (and the GKE cluster: its workload pool is <project_id>.svc.id.goog)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id (6-30 characters, lower-case letters, digits, hyphens)."
  }
}

variable "location" {
  description = "Cloud KMS location of the key ring (a region such as europe-west1, or global)."
  type        = string
  validation {
    condition     = can(regex("^(global|[a-z]+(-[a-z0-9]+)+|[a-z0-9]+)$", var.location))
    error_message = "location must be global, a region (europe-west1) or a multi-region (eu, us, nam4)."
  }
}

variable "name" {
  description = "Name of the key ring and prefix of the crypto key and service account (e.g. attest-broker-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,20}$", var.name))
    error_message = "name must be 5-21 characters of [a-z0-9-] starting with a letter (it prefixes a 30-character service account id)."
  }
}

variable "protection_level" {
  description = "Protection level of the crypto key versions: SOFTWARE or HSM."
  type        = string
  default     = "HSM"
  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.protection_level)
    error_message = "protection_level must be SOFTWARE or HSM."
  }
}

variable "rotation_period" {
  description = "Automatic rotation period of the crypto key, in seconds with an s suffix (at least 86400s). Old versions stay enabled, so wrapped keys keep decrypting."
  type        = string
  default     = "7776000s"
  validation {
    condition     = can(regex("^[0-9]+s$", var.rotation_period)) && try(tonumber(trimsuffix(var.rotation_period, "s")) >= 86400, false)
    error_message = "rotation_period must be a number of seconds with an s suffix, at least 86400s."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the broker's ServiceAccount (the KSA that GKE Workload Identity maps to the GSA)."
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

variable "workload_pool" {
  description = "GKE workload identity pool; empty means <project_id>.svc.id.goog (the cluster's workload_identity_config.workload_pool)."
  type        = string
  default     = ""
  validation {
    condition     = var.workload_pool == "" || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]\\.svc\\.id\\.goog$", var.workload_pool))
    error_message = "workload_pool must be empty or <project>.svc.id.goog."
  }
}

variable "labels" {
  description = "Labels for the crypto key."
  type        = map(string)
  default     = {}
}
