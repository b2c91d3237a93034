variable "account_id" {
  description = "Cloudflare account id."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.account_id))
    error_message = "account_id must be 32 lower-case hex digits."
  }
}

variable "zone_id" {
  description = "Zone of the broker's hostname."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.zone_id))
    error_message = "zone_id must be 32 lower-case hex digits."
  }
}

variable "cluster" {
  description = "Cluster name (one Worker per cluster)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$", var.cluster))
    error_message = "cluster must be a DNS-1123 label of at most 42 characters."
  }
}

variable "broker_hostname" {
  description = "Hostname routed to the Worker (a certificate you control, whose CA the nodes pin)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.broker_hostname))
    error_message = "broker_hostname must be a lower-case DNS name."
  }
}

variable "script_file" {
  description = "The bundled Worker module (npx wrangler deploy --dry-run --outdir dist/worker → dist/worker/worker.js)."
  type        = string
  validation {
    condition     = can(regex("\\.m?js$", var.script_file))
    error_message = "script_file must be a .js or .mjs file."
  }
}

variable "trust_roots_pem_file" {
  description = "File with the pinned vendor roots (PEM) for the enabled providers (attest-broker trust fetch writes them); at most 5 KB on Workers."
  type        = string
  validation {
    condition     = can(regex("\\.pem$", var.trust_roots_pem_file))
    error_message = "trust_roots_pem_file must be a .pem file."
  }
}

variable "ca_pin" {
  description = "sha256:<hex> of the DER SubjectPublicKeyInfo of the CA in the chain the Worker's hostname serves."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.ca_pin))
    error_message = "ca_pin must be sha256: followed by 64 lower-case hex digits."
  }
}

variable "policy_file" {
  description = "The join policy (docs/policy.md) naming this cluster, at most 5 KB on Workers; deploy/policies/gcp.yaml is an example."
  type        = string
  validation {
    condition     = can(regex("\\.ya?ml$", var.policy_file))
    error_message = "policy_file must be a .yaml or .yml file."
  }
}
