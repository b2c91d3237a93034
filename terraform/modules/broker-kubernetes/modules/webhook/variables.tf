variable "clusters" {
  description = "Names of the clusters (release.clusters) whose API servers call the webhook."
  type        = list(string)
  validation {
    condition     = length(var.clusters) > 0 && alltrue([for k in var.clusters : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k))])
    error_message = "clusters must be a non-empty list of DNS-1123 label cluster names."
  }
}

variable "server" {
  description = "https://host[:port] at which the API servers reach the broker's TokenReview listener; /v1/tokenreview is appended."
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.\\[\\]:-]+$", var.server))
    error_message = "server (broker-kubernetes: webhook_server, required in webhook mode) must be https://host[:port] without a path."
  }
}

variable "serving_chain_pem" {
  description = "Certificate chain the TokenReview listener serves, leaf first: the API servers trust its LAST certificate (the CA)."
  type        = string
  validation {
    condition     = length(regexall("-----BEGIN CERTIFICATE-----", var.serving_chain_pem)) >= 2
    error_message = "serving_chain_pem must hold at least two PEM certificates (leaf, then the CA)."
  }
}

variable "bearer_tokens" {
  description = "Cluster name => the bearer token its API server presents (32-256 characters of [A-Za-z0-9._~-])."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k, v in var.bearer_tokens : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && can(regex("^[A-Za-z0-9._~-]{32,256}$", v))])
    error_message = "bearer_tokens must map cluster names to 32-256 characters of [A-Za-z0-9._~-]."
  }
}

variable "client_common_names" {
  description = "Cluster name => common names of its API servers' client certificates (mutual TLS; the broker needs the issuing CA as its clientCaFile)."
  type        = map(list(string))
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.client_common_names : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && length(v) >= 1 && length(v) <= 8 && alltrue([for n in v : length(n) > 0 && length(n) <= 256])])
    error_message = "client_common_names must map cluster names to 1-8 common names of at most 256 characters."
  }
}

variable "apiserver_dir" {
  description = "Directory on the control-plane nodes with the webhook kubeconfig (<dir>/<cluster>.kubeconfig) and, for mutual TLS, the API server's client certificate and key (<dir>/apiserver-client.crt, <dir>/apiserver-client.key)."
  type        = string
  default     = "/etc/kubernetes/attest-broker"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$", var.apiserver_dir)) && !strcontains(var.apiserver_dir, "..")
    error_message = "apiserver_dir must be an absolute path of [A-Za-z0-9._/-] without '..' or a trailing slash."
  }
}

variable "cache_ttl" {
  description = "--authentication-token-webhook-cache-ttl: how long the API server caches an answer; a cached true outlives the token's consumption by at most this long (docs/release.md), so keep it short."
  type        = string
  default     = "10s"
  validation {
    condition     = can(regex("^([1-9][0-9]?s|[1-5]m)$", var.cache_ttl))
    error_message = "cache_ttl must be 1s-99s or 1m-5m."
  }
}
