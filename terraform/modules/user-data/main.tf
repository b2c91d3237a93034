# terraform/modules/user-data — node-pool user-data for attest-broker (MINIMAL, not a cloud
# module: it only renders deploy/cloud-init/<platform>.yaml with your three values).
#
# The cloud-init files in deploy/cloud-init/ are the single source: they carry example values,
# which this module replaces. test/deploy/terraform.test.ts checks that each example value
# occurs exactly once per file (so the replacement cannot miss or double-hit) and applies the
# module when terraform is installed. Use it through a local-path source (./ or ../), which
# Terraform does not copy, so file() finds deploy/.
# Per-cloud modules (broker deployment, KMS key, IAM) are roadmap, not here.

terraform {
  required_version = ">= 1.3"
}

variable "broker_url" {
  description = "attest-broker base URL as the nodes reach it (https://…)."
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", var.broker_url))
    error_message = "broker_url must be an https:// URL without credentials, query or fragment."
  }
}

variable "ca_pin" {
  description = "sha256:<64 hex> of the broker CA's SubjectPublicKeyInfo (openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.ca_pin))
    error_message = "ca_pin must be sha256: followed by 64 lower-case hex digits."
  }
}

variable "cluster" {
  description = "Cluster name as the broker's policy knows it."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.cluster))
    error_message = "cluster must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit."
  }
}

variable "platform" {
  description = "Evidence source: azure, gcp, aws or generic."
  type        = string
  validation {
    condition     = contains(["azure", "gcp", "aws", "generic"], var.platform)
    error_message = "platform must be one of azure, gcp, aws, generic."
  }
}

variable "client_sha256" {
  description = "Optional sha256:<64 hex> the join client fetched from the broker must have (GET /v1/client/<name>; the broker logs the digests it serves). Empty: the node trusts the pinned TLS connection and the broker's Repr-Digest."
  type        = string
  default     = ""
  validation {
    condition     = var.client_sha256 == "" || can(regex("^sha256:[0-9a-f]{64}$", var.client_sha256))
    error_message = "client_sha256 must be empty or sha256: followed by 64 lower-case hex digits."
  }
}

locals {
  template = file("${path.module}/../../../deploy/cloud-init/${var.platform}.yaml")
  rendered = replace(
    replace(
      replace(
        replace(local.template,
        "ATTEST_CLIENT_SHA256=\n", "ATTEST_CLIENT_SHA256=${var.client_sha256}\n"),
      "ATTEST_BROKER=https://attest-broker.example.internal:8443", "ATTEST_BROKER=${var.broker_url}"),
    "ATTEST_CA_PIN=sha256:0000000000000000000000000000000000000000000000000000000000000000", "ATTEST_CA_PIN=${var.ca_pin}"),
  "ATTEST_CLUSTER=example-cluster", "ATTEST_CLUSTER=${var.cluster}")
}

output "user_data" {
  description = "cloud-config text for the node pool (Azure custom_data needs base64: use user_data_base64)."
  value       = local.rendered
}

output "user_data_base64" {
  description = "The same, base64-encoded."
  value       = base64encode(local.rendered)
}
