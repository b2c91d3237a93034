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

variable "trust_dir" {
  description = "Trust directory with the pinned vendor roots for the enabled providers (`attest-broker trust fetch --dir DIR` writes it); loaded into the Worker after the deploy."
  type        = string
  default     = "trust"
  validation {
    condition     = length(var.trust_dir) > 0
    error_message = "trust_dir must name a directory."
  }
}

variable "admin_token" {
  description = "The Worker's ADMIN_TOKEN (>= 32 random characters, e.g. `openssl rand -base64 33`): the module loads roots and policy with it. Pass it through TF_VAR_admin_token."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.admin_token) >= 32
    error_message = "admin_token must be at least 32 characters."
  }
}

variable "release_api_server" {
  description = "https URL of the cluster's API server as nodes reach it. Empty: no release (admission only)."
  type        = string
  default     = ""
  validation {
    condition     = var.release_api_server == "" || can(regex("^https://", var.release_api_server))
    error_message = "release_api_server must be empty or an https:// URL."
  }
}

variable "release_ca_file" {
  description = "PEM file of the cluster CA (with release_api_server)."
  type        = string
  default     = "cluster-ca.pem"
  validation {
    condition     = can(regex("\\.(pem|crt)$", var.release_ca_file))
    error_message = "release_ca_file must be a .pem or .crt file."
  }
}

variable "tokenreview_bearer_token" {
  description = "The credential the API server's authentication webhook kubeconfig presents to the Worker (>= 32 characters; with release_api_server). Pass it through TF_VAR_tokenreview_bearer_token."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.tokenreview_bearer_token == "" || length(var.tokenreview_bearer_token) >= 32
    error_message = "tokenreview_bearer_token must be empty or at least 32 characters."
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
  description = "The join policy (docs/policy.md) naming this cluster, loaded into the Worker after the deploy; deploy/policies/gcp.yaml is an example."
  type        = string
  validation {
    condition     = can(regex("\\.ya?ml$", var.policy_file))
    error_message = "policy_file must be a .yaml or .yml file."
  }
}
