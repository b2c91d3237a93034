variable "broker_url" {
  description = "attest-broker base URL as the nodes reach it (https://host[:port][/path], no credentials, query or fragment)."
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", var.broker_url))
    error_message = "broker_url must be an https:// URL without credentials, query or fragment."
  }
}

variable "ca_pin" {
  description = "sha256:<64 lower-case hex> of the DER SubjectPublicKeyInfo of the CA in the chain the broker serves — what install-client.sh and attest-join compare (openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256). Terraform cannot compute it: no built-in function hashes binary data (README.md)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.ca_pin))
    error_message = "ca_pin must be sha256: followed by 64 lower-case hex digits."
  }
}

variable "cluster" {
  description = "Cluster name as the broker's policy and release.clusters know it."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.cluster))
    error_message = "cluster must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit."
  }
}

variable "platform" {
  description = "Evidence source: azure, gcp, aws or generic (selects templates/<platform>.yaml)."
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

variable "kubeadm_join" {
  description = "Multipart output only: add a cloud-config part (merged with list append) that makes attest-join also write a kubeadm JoinConfiguration and runs `kubeadm join --config` with it once attest-join has finished (docs/join.md, kubeadm)."
  type        = bool
  default     = false
}

variable "extra_parts" {
  description = "Multipart output only: further MIME parts after attest-broker's, e.g. an EKS nodeadm NodeConfig (application/node.eks.aws) or a shell script. content is sent as-is (7bit), so it must be ASCII; merge_type sets the part's Merge-Type header (cloud-config parts: list(append)+dict(no_replace,recurse_list)+str() appends to attest-broker's runcmd instead of replacing it)."
  type = list(object({
    content_type = string
    content      = string
    filename     = optional(string, "")
    merge_type   = optional(string, "")
  }))
  default = []
  validation {
    condition     = alltrue([for p in var.extra_parts : contains(["text/cloud-config", "text/x-shellscript", "text/cloud-boothook", "text/jinja2", "application/node.eks.aws"], p.content_type)])
    error_message = "extra_parts[*].content_type must be one of text/cloud-config, text/x-shellscript, text/cloud-boothook, text/jinja2, application/node.eks.aws."
  }
  validation {
    condition     = alltrue([for p in var.extra_parts : can(regex("^[\\t\\n\\r\\x{20}-\\x{7E}]*$", p.content)) && !strcontains(p.content, "==ATTEST-BROKER-PART==")])
    error_message = "extra_parts[*].content must be printable ASCII (it is sent 7bit) and must not contain the MIME boundary ==ATTEST-BROKER-PART==."
  }
  validation {
    condition     = alltrue([for p in var.extra_parts : can(regex("^[A-Za-z0-9._-]{0,64}$", p.filename)) && can(regex("^[A-Za-z(),_+ ]{0,120}$", p.merge_type))])
    error_message = "extra_parts[*].filename must be up to 64 of [A-Za-z0-9._-]; merge_type up to 120 of letters, ( ) , _ + and spaces."
  }
}
