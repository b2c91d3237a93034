variable "project_id" {
  description = "GCP project of the cluster, the key ring and the nodes."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id."
  }
}

variable "gke_cluster_name" {
  description = "GKE cluster (Workload Identity enabled) the broker runs in."
  type        = string
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.gke_cluster_name))
    error_message = "gke_cluster_name must be a GKE cluster name."
  }
}

variable "gke_location" {
  description = "Region or zone of the GKE cluster; also the Cloud KMS location (its region)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9](-[a-z])?$", var.gke_location))
    error_message = "gke_location must be a GCP region (europe-west1) or zone (europe-west1-b)."
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

variable "zones" {
  description = "Zones the nodes run in (policy identity.gcp.zones)."
  type        = list(string)
  validation {
    condition     = length(var.zones) > 0 && alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", z))])
    error_message = "zones must be a non-empty list of GCP zones."
  }
}

variable "node_image_pcrs" {
  description = "The node image's SHA-256 PCR values (index => 64 hex), from `attest-broker policy capture`."
  type        = map(string)
  validation {
    condition     = length(var.node_image_pcrs) > 0 && alltrue([for k, v in var.node_image_pcrs : can(regex("^([0-9]|1[0-9]|2[0-3])$", k)) && can(regex("^[0-9a-f]{64}$", v))])
    error_message = "node_image_pcrs must map PCR indexes 0-23 to 64 lower-case hex digits."
  }
}

variable "system_node_pool" {
  description = "GKE node pool the broker runs on (managed clusters have no schedulable control plane)."
  type        = string
  default     = "system"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.system_node_pool))
    error_message = "system_node_pool must be a node pool name."
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

variable "node_machine_type" {
  description = "Machine type of the attested nodes (Shielded VM capable)."
  type        = string
  default     = "n2d-standard-4"
  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.node_machine_type))
    error_message = "node_machine_type must be a GCE machine type."
  }
}

variable "node_source_image" {
  description = "Self link or family of the node image (the measured image of node_image_pcrs)."
  type        = string
  validation {
    condition     = can(regex("^(projects/|https://www\\.googleapis\\.com/compute/v1/projects/)[a-z0-9-]+/global/images/", var.node_source_image))
    error_message = "node_source_image must be projects/<p>/global/images/<image or family/name>."
  }
}

variable "node_subnetwork" {
  description = "Subnetwork self link of the nodes."
  type        = string
  validation {
    condition     = can(regex("^(projects/|https://www\\.googleapis\\.com/compute/v1/projects/)[a-z0-9-]+/regions/[a-z0-9-]+/subnetworks/[a-z0-9-]+$", var.node_subnetwork))
    error_message = "node_subnetwork must be projects/<p>/regions/<r>/subnetworks/<name>."
  }
}
