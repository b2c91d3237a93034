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

variable "config_dir" {
  description = "Directory the broker reads its files from: config.yaml and policy.yaml, tls/ (tls.crt, tls.key), webhook/ (tls.crt, tls.key, client-ca.crt) and kube/<cluster>.kubeconfig. broker-kubernetes mounts its ConfigMap at /etc/attest-broker."
  type        = string
  default     = "/etc/attest-broker"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*$", var.config_dir)) && !strcontains(var.config_dir, "..")
    error_message = "config_dir must be an absolute path of [A-Za-z0-9._/-] without '..'."
  }
}

variable "trust_dir" {
  description = "trust.dir: the directory `attest-broker trust fetch` fills with the pinned vendor roots (broker-kubernetes: the trust-fetch init container's emptyDir)."
  type        = string
  default     = "/var/lib/attest-broker/trust"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*$", var.trust_dir)) && !strcontains(var.trust_dir, "..")
    error_message = "trust_dir must be an absolute path of [A-Za-z0-9._/-] without '..'."
  }
}

variable "kubeconfigs" {
  description = "A broker outside the cluster: cluster name => {context} of the kubeconfig at <config_dir>/kube/<cluster>.kubeconfig it reaches that API server with (release.clusters.<name>.kube.kubeconfig; context null = its current-context). Empty (the default): every cluster is reached with the in-cluster service account (kube.inCluster)."
  type = map(object({
    context = optional(string)
  }))
  default = {}
  validation {
    condition     = alltrue([for k, v in var.kubeconfigs : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && (v.context == null || can(regex("^[A-Za-z0-9._@:/-]{1,253}$", v.context)))])
    error_message = "kubeconfigs must map cluster names to {context = null or a context name}."
  }
}

variable "release_mode" {
  description = "release.mode: secret (the broker writes bootstrap-token Secrets into kube-system) or webhook (no Secrets: the API server asks the broker about tokens through its authentication token webhook; token_review sets that listener up)."
  type        = string
  default     = "secret"
  validation {
    condition     = contains(["secret", "webhook"], var.release_mode)
    error_message = "release_mode must be secret or webhook."
  }
}

variable "token_review" {
  description = "release.tokenReview for webhook mode (ignored in secret mode): the listener's port (TLS from <config_dir>/webhook/tls.crt and tls.key), client_ca = verify API server client certificates against <config_dir>/webhook/client-ca.crt, and per cluster the credentials of the API server that may ask: the lower-case hex SHA-256 of its bearer token and/or the common names of its client certificates."
  type = object({
    port      = optional(number, 8444)
    client_ca = optional(bool, false)
    callers = map(object({
      bearer_token_sha256 = optional(list(string), [])
      client_common_names = optional(list(string), [])
    }))
    max_reviews_per_token = optional(number, 16)
  })
  default = null
  validation {
    condition = var.token_review == null || try(
      var.token_review.port >= 1024 && var.token_review.port <= 65535 && floor(var.token_review.port) == var.token_review.port &&
      var.token_review.max_reviews_per_token >= 1 && var.token_review.max_reviews_per_token <= 1000 && floor(var.token_review.max_reviews_per_token) == var.token_review.max_reviews_per_token &&
      length(var.token_review.callers) > 0 &&
      alltrue([for k, c in var.token_review.callers : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) &&
        length(c.bearer_token_sha256) + length(c.client_common_names) > 0 && length(c.bearer_token_sha256) <= 8 && length(c.client_common_names) <= 8 &&
        alltrue([for h in c.bearer_token_sha256 : can(regex("^[0-9a-f]{64}$", h))]) &&
        alltrue([for n in c.client_common_names : length(n) > 0 && length(n) <= 256]) &&
      (length(c.client_common_names) == 0 || var.token_review.client_ca)]),
    false)
    error_message = "token_review: port 1024-65535, max_reviews_per_token 1-1000, and at least one caller per cluster name with 1-8 lower-case hex SHA-256 bearer digests and/or 1-8 client certificate common names (common names need client_ca = true)."
  }
}
