variable "clusters" {
  description = <<-EOT
    Cluster name (as the policy names it) => how the broker reaches that cluster:
    api_server (release.clusters.<name>.apiServer, as the nodes reach it), endpoint (where the
    broker reaches it, if different, e.g. a private endpoint), ca_pem (the cluster CA, PEM: e.g.
    base64decode(aws_eks_cluster.x.certificate_authority[0].data)), platform (eks, gke or aks) with
    eks = {cluster_name, region, profile?, role_arn?} or aks = {login = msi | workloadidentity | spn,
    client_id?, tenant_id?} (GKE needs nothing: gke-gcloud-auth-plugin uses Application Default
    Credentials), env (extra plugin environment; never secrets: put those in the broker's own
    environment, which the plugin inherits) and rbac_subject ({kind = User | Group, name}: the
    identity the plugin logs in as, for cluster-rbac).
  EOT
  type = map(object({
    api_server = string
    endpoint   = optional(string)
    ca_pem     = string
    platform   = string
    eks = optional(object({
      cluster_name = string
      region       = string
      profile      = optional(string)
      role_arn     = optional(string)
    }))
    aks = optional(object({
      login     = optional(string, "msi")
      client_id = optional(string)
      tenant_id = optional(string)
    }))
    env          = optional(map(string), {})
    rbac_subject = object({ kind = string, name = string })
  }))
  validation {
    condition     = length(var.clusters) > 0 && alltrue([for k, c in var.clusters : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && can(regex("^https://[A-Za-z0-9.:\\[\\]-]+(/[A-Za-z0-9._~/-]*)?$", c.api_server)) && (c.endpoint == null || can(regex("^https://[A-Za-z0-9.:\\[\\]-]+(/[A-Za-z0-9._~/-]*)?$", c.endpoint)))])
    error_message = "clusters must be a non-empty map of DNS-1123 label names to clusters whose api_server (and endpoint, if set) are https:// URLs."
  }
  validation {
    condition     = alltrue([for k, c in var.clusters : length(regexall("-----BEGIN CERTIFICATE-----", c.ca_pem)) >= 1])
    error_message = "clusters[*].ca_pem must be the cluster CA as PEM (base64decode the clouds' base64 attribute)."
  }
  validation {
    condition = alltrue([for k, c in var.clusters : (
      (c.platform == "eks" && c.eks != null && c.aks == null && try(can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", c.eks.cluster_name)) && can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", c.eks.region)) && (c.eks.profile == null || can(regex("^[A-Za-z0-9._-]{1,64}$", c.eks.profile))) && (c.eks.role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", c.eks.role_arn))), false)) ||
      (c.platform == "gke" && c.eks == null && c.aks == null) ||
      (c.platform == "aks" && c.eks == null && try(contains(["msi", "workloadidentity", "spn"], c.aks.login) && (c.aks.client_id == null || can(regex("^[0-9a-f-]{36}$", c.aks.client_id))) && (c.aks.tenant_id == null || can(regex("^[0-9a-f-]{36}$", c.aks.tenant_id))) && (c.aks.login != "spn" || (c.aks.client_id != null && c.aks.tenant_id != null)), false))
    )])
    error_message = "clusters[*].platform must be eks (with eks = {cluster_name, region[, profile, role_arn]}), gke (nothing more) or aks (with aks = {login = msi | workloadidentity | spn, client_id?, tenant_id?}; spn needs both ids; never devicecode or interactive, which wait for a person)."
  }
  validation {
    condition     = alltrue([for k, c in var.clusters : contains(["User", "Group"], c.rbac_subject.kind) && length(c.rbac_subject.name) > 0 && length(c.rbac_subject.name) <= 253 && !can(regex("['\\\\\\s]", c.rbac_subject.name))])
    error_message = "clusters[*].rbac_subject must be {kind = User or Group, name = 1-253 characters without quotes, backslashes or spaces}."
  }
  validation {
    condition     = alltrue([for k, c in var.clusters : alltrue([for n, v in c.env : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", n)) && !can(regex("(?i)(secret|password|access_key|session_token)", n))])])
    error_message = "clusters[*].env names must be environment variable names, and no secrets (names with SECRET, PASSWORD, ACCESS_KEY or SESSION_TOKEN): the kubeconfig is not a secret store; give those to the broker's own environment."
  }
}

variable "policy_yaml" {
  description = "The join policy document (docs/policy.md), e.g. templatefile(\"policy.yaml.tftpl\", {...}); empty: the files output has no policy.yaml (you place it). Checked here for its apiVersion/kind only; run `attest-broker policy check` on it in CI."
  type        = string
  default     = ""
  validation {
    condition     = var.policy_yaml == "" || try(yamldecode(var.policy_yaml).apiVersion == "attest-broker/v1" && yamldecode(var.policy_yaml).kind == "JoinPolicy", false)
    error_message = "policy_yaml must be empty or a YAML document with apiVersion: attest-broker/v1 and kind: JoinPolicy."
  }
}

variable "providers_enabled" {
  description = "Evidence providers to enable: any of tpm, azure, gcp, aws (each enabled cloud provider needs its pinned roots in trust_dir: run attest-broker trust fetch)."
  type        = list(string)
  validation {
    condition     = length(var.providers_enabled) > 0 && alltrue([for p in var.providers_enabled : contains(["tpm", "azure", "gcp", "aws"], p)])
    error_message = "providers_enabled must be a non-empty list of tpm, azure, gcp, aws."
  }
}

variable "config_dir" {
  description = "Directory on the broker's host with config.yaml, policy.yaml, tls/ (tls.crt = leaf followed by CA, tls.key) and kube/<cluster>.kubeconfig."
  type        = string
  default     = "/etc/attest-broker"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*$", var.config_dir)) && !strcontains(var.config_dir, "..")
    error_message = "config_dir must be an absolute path of [A-Za-z0-9._/-] without '..'."
  }
}

variable "trust_dir" {
  description = "trust.dir: where `attest-broker trust fetch` puts the pinned vendor roots on the broker's host."
  type        = string
  default     = "/var/lib/attest-broker/trust"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*$", var.trust_dir)) && !strcontains(var.trust_dir, "..")
    error_message = "trust_dir must be an absolute path of [A-Za-z0-9._/-] without '..'."
  }
}

variable "port" {
  description = "Port the broker listens on (listen.port); 1024 or above, so it runs as a non-root user."
  type        = number
  default     = 8443
  validation {
    condition     = var.port >= 1024 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "port must be a whole number from 1024 to 65535 (run the broker as a non-root user)."
  }
}

variable "tls" {
  description = "The broker serves TLS itself with <config_dir>/tls/tls.crt (leaf followed by the CA the nodes pin) and tls.key. false: plain HTTP behind your TLS-terminating proxy (list it in trusted_proxies)."
  type        = bool
  default     = true
}

variable "trusted_proxies" {
  description = "listen.trustedProxies: CIDRs of the proxy or load balancer in front, whose X-Forwarded-For is believed."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.trusted_proxies) <= 64 && alltrue([for c in var.trusted_proxies : can(cidrhost(c, 0)) || can(cidrhost("${c}/32", 0)) || can(cidrhost("${c}/128", 0))])
    error_message = "trusted_proxies must be at most 64 IP addresses or CIDR ranges."
  }
}

variable "store_url" {
  description = "store.url: memory:// for one broker process; redis://… for more (the password through ATTEST_BROKER_STORE_URL in the broker's environment, never here)."
  type        = string
  default     = "memory://"
  validation {
    condition     = can(regex("^(memory://|rediss?://|redis\\+sentinel://|redis\\+cluster://)", var.store_url)) && !can(regex("^[a-z+]+://[^/@]*:[^/@]*@", var.store_url))
    error_message = "store_url must start with memory://, redis://, rediss://, redis+sentinel:// or redis+cluster:// and carry no password."
  }
}

variable "approver" {
  description = "release.approver.enabled: the broker approves kubelet CSRs of the nodes it admitted, through the same kubeconfig; cluster-rbac must grant it (approver = true) and its approver_namespace (default attest-broker, the Lease's namespace) must exist in each cluster."
  type        = bool
  default     = true
}

variable "kms" {
  description = "release.kms: the broker_kms_config output of iam-aws, iam-gcp or iam-azure, or null (then want: disk-key is refused). Off-cluster the KMS credentials come from the host (instance profile, VM service account, managed identity), not from a pod identity."
  type        = map(string)
  default     = null
  validation {
    # The full per-kind check is modules/config's.
    condition     = var.kms == null || try(contains(["aws-kms", "gcp-kms", "azure-keyvault"], var.kms.kind), false)
    error_message = "kms must be null or a release.kms block with kind aws-kms, gcp-kms or azure-keyvault."
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
