variable "region" {
  description = "AWS region of the cluster, the KMS key and the nodes."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "kubeconfig_path" {
  description = "kubeconfig of the cluster (an administrator's, for creating the broker's objects)."
  type        = string
  validation {
    condition     = length(var.kubeconfig_path) > 0
    error_message = "kubeconfig_path must not be empty."
  }
}

variable "kubeconfig_context" {
  description = "Context in kubeconfig_path; empty: its current context."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[A-Za-z0-9@:._/-]{0,253}$", var.kubeconfig_context))
    error_message = "kubeconfig_context must be a kubeconfig context name."
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
  description = "The cluster's API server URL as the nodes reach it."
  type        = string
  validation {
    condition     = can(regex("^https://", var.api_server_url))
    error_message = "api_server_url must be an https:// URL."
  }
}

variable "oidc_provider_arn" {
  description = "IAM OIDC provider for the cluster's service-account issuer (a self-managed cluster publishes its own discovery document; IRSA trusts it)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "key_admin_arns" {
  description = "IAM principals that administer (but cannot use) the disk-key KMS key."
  type        = list(string)
  validation {
    condition     = length(var.key_admin_arns) > 0
    error_message = "key_admin_arns must not be empty."
  }
}

variable "node_image_pcrs" {
  description = "The node AMI's NitroTPM SHA-384 PCR values (index => 96 hex), from `attest-broker policy capture`: pinned both in the join policy and in the KMS key policy."
  type        = map(string)
  validation {
    condition     = length(var.node_image_pcrs) > 0 && alltrue([for k, v in var.node_image_pcrs : can(regex("^([0-9]|1[0-9]|2[0-3])$", k)) && can(regex("^[0-9a-f]{96}$", v))])
    error_message = "node_image_pcrs must map PCR indexes 0-23 to 96 lower-case hex digits."
  }
}

variable "node_ami_id" {
  description = "The node AMI (UEFI boot, NitroTPM support, the measured image of node_image_pcrs)."
  type        = string
  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.node_ami_id))
    error_message = "node_ami_id must be an AMI id."
  }
}

variable "node_instance_type" {
  description = "Node instance type (a Nitro type with NitroTPM support)."
  type        = string
  default     = "m7i.large"
  validation {
    condition     = can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", var.node_instance_type))
    error_message = "node_instance_type must be an EC2 instance type such as m7i.large."
  }
}

variable "broker_hostname" {
  description = "DNS name the nodes reach the broker at (the internal NLB in front of the broker's Service)."
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
  description = "sha256:<hex> of the broker CA's DER SubjectPublicKeyInfo (the CA in tls_cert_chain_pem): openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.ca_pin))
    error_message = "ca_pin must be sha256: followed by 64 lower-case hex digits."
  }
}
