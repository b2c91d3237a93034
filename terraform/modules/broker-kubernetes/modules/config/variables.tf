variable "port" {
  description = "Port the broker listens on inside the pod."
  type        = number
  default     = 8443
  validation {
    condition     = var.port >= 1024 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "port must be a whole number from 1024 to 65535 (the pod runs as non-root)."
  }
}

variable "tls" {
  description = "Whether the broker serves TLS itself with the certificate mounted at /etc/attest-broker/tls/ (tls.crt = leaf followed by CA, tls.key). false: plain HTTP behind a TLS-terminating ingress."
  type        = bool
  default     = true
}

variable "trusted_proxies" {
  description = "CIDRs whose X-Forwarded-For the broker believes (listen.trustedProxies): the ingress or load balancer in front, if any."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.trusted_proxies) <= 64 && alltrue([for c in var.trusted_proxies : can(cidrhost(c, 0)) || can(cidrhost("${c}/32", 0)) || can(cidrhost("${c}/128", 0))])
    error_message = "trusted_proxies must be at most 64 IP addresses or CIDR ranges."
  }
}

variable "providers_enabled" {
  description = "Evidence providers to enable: any of tpm, azure, gcp, aws (each enabled cloud provider needs its pinned roots, which the trust-fetch init container downloads)."
  type        = list(string)
  validation {
    condition     = length(var.providers_enabled) > 0 && alltrue([for p in var.providers_enabled : contains(["tpm", "azure", "gcp", "aws"], p)])
    error_message = "providers_enabled must be a non-empty list of tpm, azure, gcp, aws."
  }
}

variable "store_url" {
  description = "store.url: memory:// for one replica; redis://… (the password comes from ATTEST_BROKER_STORE_URL in the pod environment, never from here) for more."
  type        = string
  default     = "memory://"
  validation {
    condition     = can(regex("^(memory://|rediss?://|redis\\+sentinel://|redis\\+cluster://)", var.store_url)) && !can(regex("^[a-z+]+://[^/@]*:[^/@]*@", var.store_url))
    error_message = "store_url must start with memory://, redis://, rediss://, redis+sentinel:// or redis+cluster:// and carry no password."
  }
}

variable "clusters" {
  description = "release.clusters: cluster name (as the policy names it) => the API server URL as nodes reach it. The broker reaches the API server with its in-cluster service account."
  type        = map(string)
  validation {
    condition     = length(var.clusters) > 0 && alltrue([for k, v in var.clusters : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && can(regex("^https://[A-Za-z0-9.:\\[\\]-]+(/[A-Za-z0-9._~/-]*)?$", v))])
    error_message = "clusters must map DNS-1123 label names to https:// API server URLs, and must not be empty."
  }
}

variable "approver" {
  description = "release.approver.enabled: the broker approves kubelet CSRs of the nodes it admitted (docs/approver.md); cluster-rbac must grant it (approver = true there)."
  type        = bool
  default     = true
}

variable "kms" {
  description = "release.kms: the broker_kms_config output of iam-aws, iam-gcp or iam-azure, or null (then want: disk-key is refused)."
  type        = map(string)
  default     = null
  validation {
    condition = var.kms == null || try(
      (var.kms.kind == "aws-kms" && length(setsubtract(keys(var.kms), ["kind", "keyId", "region", "endpoint"])) == 0 && contains(keys(var.kms), "keyId") && contains(keys(var.kms), "region")) ||
      (var.kms.kind == "gcp-kms" && length(setsubtract(keys(var.kms), ["kind", "keyName", "transport"])) == 0 && can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms.keyName))) ||
      (var.kms.kind == "azure-keyvault" && length(setsubtract(keys(var.kms), ["kind", "vaultUrl", "keyName", "keyVersion", "credential", "clientId"])) == 0 && alltrue([for k in ["vaultUrl", "keyName", "keyVersion"] : contains(keys(var.kms), k)])),
    false)
    error_message = "kms must be null or a release.kms block: aws-kms {keyId, region[, endpoint]}, gcp-kms {keyName = projects/…/cryptoKeys/…[, transport]} or azure-keyvault {vaultUrl, keyName, keyVersion[, credential, clientId]} (the iam modules' broker_kms_config)."
  }
}

variable "challenge_ttl_seconds" {
  description = "challenge.ttlSeconds (10-3600)."
  type        = number
  default     = 120
  validation {
    condition     = var.challenge_ttl_seconds >= 10 && var.challenge_ttl_seconds <= 3600 && floor(var.challenge_ttl_seconds) == var.challenge_ttl_seconds
    error_message = "challenge_ttl_seconds must be a whole number from 10 to 3600."
  }
}

variable "log_level" {
  description = "log.level: debug, info, warn or error."
  type        = string
  default     = "info"
  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}
