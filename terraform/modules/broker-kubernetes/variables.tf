variable "namespace" {
  description = "Namespace for the broker (created with Pod Security Admission restricted enforced, unless create_namespace = false)."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "create_namespace" {
  description = "Create the namespace (false: it exists already)."
  type        = bool
  default     = true
}

variable "image" {
  description = "Broker image, pinned by tag or digest (never :latest): used for the broker and its trust-fetch init container."
  type        = string
  default     = "ghcr.io/attest-broker/attest-broker:0.1.0"
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must be registry/repository:tag or registry/repository@sha256:<64 hex>, and not :latest."
  }
}

variable "replicas" {
  description = "Broker replicas. More than one needs redis (challenges must be consumed exactly once, which the per-process memory store guarantees only for one process)."
  type        = number
  default     = 1
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 10 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number from 1 to 10."
  }
}

variable "redis_enabled" {
  description = "Run the in-cluster Redis (no persistence, password from a Secret, NetworkPolicy admitting only broker pods), as deploy/kubernetes/overlays/redis does. Needed for replicas > 1; for production prefer a managed Redis (not wired here)."
  type        = bool
  default     = false
}

variable "redis_password" {
  description = "Password of the in-cluster Redis (32-128 characters of [A-Za-z0-9]); reaches the broker only through ATTEST_BROKER_STORE_URL built from the Secret in the pod environment. Ignored unless redis_enabled."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.redis_password == "" || can(regex("^[A-Za-z0-9]{32,128}$", var.redis_password))
    error_message = "redis_password must be empty or 32-128 characters of [A-Za-z0-9]."
  }
}

variable "redis_image" {
  description = "Redis image, pinned by tag or digest (not :latest)."
  type        = string
  default     = "redis:7.4-alpine"
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.redis_image)) && !endswith(var.redis_image, ":latest")
    error_message = "redis_image must be pinned by tag or digest, and not :latest."
  }
}

variable "providers_enabled" {
  description = "Evidence providers to enable: any of tpm, azure, gcp, aws."
  type        = list(string)
  validation {
    condition     = length(var.providers_enabled) > 0 && alltrue([for p in var.providers_enabled : contains(["tpm", "azure", "gcp", "aws"], p)])
    error_message = "providers_enabled must be a non-empty list of tpm, azure, gcp, aws."
  }
}

variable "clusters" {
  description = "release.clusters: cluster name (as the policy names it) => API server URL as the nodes reach it."
  type        = map(string)
  validation {
    condition     = length(var.clusters) > 0 && alltrue([for k, v in var.clusters : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && can(regex("^https://", v))])
    error_message = "clusters must map DNS-1123 label names to https:// API server URLs, and must not be empty."
  }
}

variable "policy_yaml" {
  description = "The join policy document (docs/policy.md), e.g. templatefile(\"policy.yaml.tftpl\", {...}). Checked here for its apiVersion/kind only; run `attest-broker policy check` on it in CI."
  type        = string
  validation {
    condition     = try(yamldecode(var.policy_yaml).apiVersion == "attest-broker/v1" && yamldecode(var.policy_yaml).kind == "JoinPolicy", false)
    error_message = "policy_yaml must be a YAML document with apiVersion: attest-broker/v1 and kind: JoinPolicy."
  }
}

variable "kms" {
  description = "release.kms: the broker_kms_config output of iam-aws, iam-gcp or iam-azure, or null (no disk keys)."
  type        = map(string)
  default     = null
  validation {
    # The full per-kind check is modules/config's.
    condition     = var.kms == null || try(contains(["aws-kms", "gcp-kms", "azure-keyvault"], var.kms.kind), false)
    error_message = "kms must be null or a release.kms block with kind aws-kms, gcp-kms or azure-keyvault."
  }
}

variable "approver" {
  description = "Run the CSR approver in the broker (release.approver.enabled). Grant it with cluster-rbac (approver = true)."
  type        = bool
  default     = true
}

variable "tls_cert_chain_pem" {
  description = "Certificate chain the broker serves itself: the leaf FOLLOWED BY the CA whose SPKI the nodes pin (the node client finds the pinned CA in the served chain). Empty: plain HTTP on 8080 for a TLS-terminating ingress you provide (then list it in trusted_proxies)."
  type        = string
  default     = ""
  validation {
    condition     = var.tls_cert_chain_pem == "" || length(regexall("-----BEGIN CERTIFICATE-----", var.tls_cert_chain_pem)) >= 2
    error_message = "tls_cert_chain_pem must be empty or hold at least two PEM certificates (leaf, then the CA)."
  }
}

variable "tls_private_key_pem" {
  description = "PEM private key of the leaf certificate in tls_cert_chain_pem (stored in a kubernetes.io/tls Secret)."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.tls_private_key_pem == "" || can(regex("-----BEGIN (RSA |EC )?PRIVATE KEY-----", var.tls_private_key_pem))
    error_message = "tls_private_key_pem must be empty or a PEM private key."
  }
}

variable "service_type" {
  description = "Service type: ClusterIP (behind your ingress), LoadBalancer (make it internal to the node subnets with service_annotations) or NodePort."
  type        = string
  default     = "ClusterIP"
  validation {
    condition     = contains(["ClusterIP", "LoadBalancer", "NodePort"], var.service_type)
    error_message = "service_type must be ClusterIP, LoadBalancer or NodePort."
  }
}

variable "service_annotations" {
  description = "Annotations for the Service, e.g. an internal load balancer (service.beta.kubernetes.io/aws-load-balancer-scheme = internal, networking.gke.io/load-balancer-type = Internal, service.beta.kubernetes.io/azure-load-balancer-internal = true)."
  type        = map(string)
  default     = {}
}

variable "service_account_annotations" {
  description = "Annotations for the broker's ServiceAccount: the service_account_annotations output of an iam-* module (IRSA role ARN, GKE GSA, Azure client id)."
  type        = map(string)
  default     = {}
}

variable "pod_labels" {
  description = "Extra pod labels, e.g. iam-azure's pod_labels (azure.workload.identity/use = true)."
  type        = map(string)
  default     = {}
}

variable "run_on_control_plane" {
  description = "Tolerate the control-plane taint and select control-plane nodes (node-role.kubernetes.io/control-plane), so the broker runs before any worker exists. Managed clusters (EKS, GKE, AKS) have no schedulable control plane: use node_selector for a system pool there."
  type        = bool
  default     = false
}

variable "node_selector" {
  description = "Extra nodeSelector entries for the broker pods."
  type        = map(string)
  default     = {}
}

variable "tolerations" {
  description = "Extra tolerations for the broker pods."
  type = list(object({
    key      = string
    operator = optional(string, "Exists")
    value    = optional(string)
    effect   = optional(string)
  }))
  default = []
  validation {
    condition     = alltrue([for t in var.tolerations : contains(["Exists", "Equal"], t.operator) && (t.effect == null || contains(["NoSchedule", "PreferNoSchedule", "NoExecute"], t.effect))])
    error_message = "tolerations[*].operator must be Exists or Equal; effect NoSchedule, PreferNoSchedule or NoExecute."
  }
}

variable "trusted_proxies" {
  description = "listen.trustedProxies: CIDRs of the ingress or load balancer whose X-Forwarded-For is believed."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.trusted_proxies) <= 64 && alltrue([for c in var.trusted_proxies : can(cidrhost(c, 0)) || can(cidrhost("${c}/32", 0)) || can(cidrhost("${c}/128", 0))])
    error_message = "trusted_proxies must be at most 64 IP addresses or CIDR ranges."
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

variable "release_mode" {
  description = "release.mode: secret (default; the broker writes bootstrap-token Secrets into kube-system) or webhook (no Secrets: the API server asks the broker about each token through --authentication-token-webhook-config-file, which needs a control plane whose kube-apiserver flags you set, e.g. kubeadm — not EKS, GKE or AKS). Give cluster-rbac the same release_mode."
  type        = string
  default     = "secret"
  validation {
    condition     = contains(["secret", "webhook"], var.release_mode)
    error_message = "release_mode must be secret or webhook."
  }
}

variable "webhook_server" {
  description = "webhook mode: https://host[:port] at which the API servers reach the broker's TokenReview listener (the webhook Service: its fixed webhook_cluster_ip, or an internal load balancer). The serving certificate must name that host. The kube-apiserver of kubeadm runs on the host network with the host's DNS, so *.svc names do not resolve there."
  type        = string
  default     = ""
  validation {
    condition     = var.webhook_server == "" || can(regex("^https://[A-Za-z0-9.\\[\\]:-]+$", var.webhook_server))
    error_message = "webhook_server must be empty or https://host[:port] (no path: /v1/tokenreview is appended)."
  }
}

variable "webhook_cluster_ip" {
  description = "webhook mode: a fixed ClusterIP (inside the service CIDR) for the attest-broker-webhook Service, so that webhook_server and the serving certificate can name it before it exists. Empty: Kubernetes picks one."
  type        = string
  default     = ""
  validation {
    condition     = var.webhook_cluster_ip == "" || can(cidrhost("${var.webhook_cluster_ip}/32", 0)) || can(cidrhost("${var.webhook_cluster_ip}/128", 0))
    error_message = "webhook_cluster_ip must be empty or an IP address."
  }
}

variable "webhook_service_type" {
  description = "webhook mode: type of the attest-broker-webhook Service (only the TokenReview port; never the join Service): ClusterIP (the API servers reach it through kube-proxy on their nodes) or LoadBalancer (make it internal with webhook_service_annotations)."
  type        = string
  default     = "ClusterIP"
  validation {
    condition     = contains(["ClusterIP", "LoadBalancer"], var.webhook_service_type)
    error_message = "webhook_service_type must be ClusterIP or LoadBalancer."
  }
}

variable "webhook_service_annotations" {
  description = "webhook mode: annotations of the attest-broker-webhook Service (an internal load balancer)."
  type        = map(string)
  default     = {}
}

variable "webhook_tls_cert_chain_pem" {
  description = "webhook mode: certificate chain of the TokenReview listener, leaf (naming the host of webhook_server) FOLLOWED BY its CA; the API server's webhook kubeconfig trusts that last certificate. Empty: the broker's own tls_cert_chain_pem."
  type        = string
  default     = ""
  validation {
    condition     = var.webhook_tls_cert_chain_pem == "" || length(regexall("-----BEGIN CERTIFICATE-----", var.webhook_tls_cert_chain_pem)) >= 2
    error_message = "webhook_tls_cert_chain_pem must be empty or hold at least two PEM certificates (leaf, then the CA)."
  }
}

variable "webhook_tls_private_key_pem" {
  description = "webhook mode: PEM private key of the leaf in webhook_tls_cert_chain_pem (empty with it: the broker's tls_private_key_pem)."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.webhook_tls_private_key_pem == "" || can(regex("-----BEGIN (RSA |EC )?PRIVATE KEY-----", var.webhook_tls_private_key_pem))
    error_message = "webhook_tls_private_key_pem must be empty or a PEM private key."
  }
}

variable "webhook_bearer_tokens" {
  description = "webhook mode: cluster name => the bearer token its API server presents (32-256 characters of [A-Za-z0-9._~-], e.g. random_password). Only its SHA-256 reaches the broker (release.tokenReview.callers.<cluster>.bearerTokenSha256, in the ConfigMap); the token itself is in the webhook_kubeconfigs output only."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k, v in var.webhook_bearer_tokens : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && can(regex("^[A-Za-z0-9._~-]{32,256}$", v))])
    error_message = "webhook_bearer_tokens must map cluster names to 32-256 characters of [A-Za-z0-9._~-]."
  }
}

variable "webhook_client_ca_pem" {
  description = "webhook mode, mutual TLS: PEM CA that issued the API servers' client certificates (release.tokenReview.listen.tls.clientCaFile). Empty: bearer tokens only."
  type        = string
  default     = ""
  validation {
    condition     = var.webhook_client_ca_pem == "" || length(regexall("-----BEGIN CERTIFICATE-----", var.webhook_client_ca_pem)) >= 1
    error_message = "webhook_client_ca_pem must be empty or PEM certificates."
  }
}

variable "webhook_client_common_names" {
  description = "webhook mode, mutual TLS: cluster name => common names of its API servers' client certificates (1-8; needs webhook_client_ca_pem)."
  type        = map(list(string))
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.webhook_client_common_names : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", k)) && length(v) >= 1 && length(v) <= 8 && alltrue([for n in v : length(n) > 0 && length(n) <= 256])])
    error_message = "webhook_client_common_names must map cluster names to 1-8 common names of at most 256 characters."
  }
}

variable "webhook_apiserver_dir" {
  description = "webhook mode: directory on the control-plane nodes holding the API server's webhook kubeconfig (<dir>/<cluster>.kubeconfig) and, for mutual TLS, its client certificate and key (<dir>/apiserver-client.crt, .key); used in the webhook_kubeconfigs and kube_apiserver_args outputs. Mount it into the kube-apiserver static pod (kubeadm: apiServer.extraVolumes)."
  type        = string
  default     = "/etc/kubernetes/attest-broker"
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$", var.webhook_apiserver_dir)) && !strcontains(var.webhook_apiserver_dir, "..")
    error_message = "webhook_apiserver_dir must be an absolute path of [A-Za-z0-9._/-] without '..' or a trailing slash."
  }
}
