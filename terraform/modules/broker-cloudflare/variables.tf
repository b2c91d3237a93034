variable "account_id" {
  description = "Cloudflare account id (32 hex digits)."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.account_id))
    error_message = "account_id must be 32 lower-case hex digits."
  }
}

variable "script_name" {
  description = "Worker name (one per cluster, e.g. attest-broker-prod-eu1)."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.script_name))
    error_message = "script_name must be 1-63 characters of [a-z0-9-], not starting or ending with a hyphen."
  }
}

variable "script_file" {
  description = "Path of the bundled Worker ES module built from broker/worker.ts (e.g. `npx wrangler deploy --dry-run --outdir dist/worker` writes dist/worker/worker.js). The repository's build does not produce it."
  type        = string
  validation {
    condition     = can(regex("\\.(m?js)$", var.script_file)) && fileexists(var.script_file)
    error_message = "script_file must be an existing .js or .mjs file (the bundled Worker module)."
  }
}

variable "main_module" {
  description = "Name of the main module part (the bundle's file name)."
  type        = string
  default     = "worker.js"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+\\.m?js$", var.main_module))
    error_message = "main_module must be a .js or .mjs file name."
  }
}

variable "compatibility_date" {
  description = "Workers compatibility date (wrangler.toml: 2026-04-01)."
  type        = string
  default     = "2026-04-01"
  validation {
    condition     = can(regex("^20[0-9]{2}-[01][0-9]-[0-3][0-9]$", var.compatibility_date))
    error_message = "compatibility_date must be YYYY-MM-DD."
  }
}

variable "providers_enabled" {
  description = "Evidence providers the Worker enables (the PROVIDERS binding): any of tpm, azure, gcp, aws."
  type        = list(string)
  validation {
    condition     = length(var.providers_enabled) > 0 && alltrue([for p in var.providers_enabled : contains(["tpm", "azure", "gcp", "aws"], p)])
    error_message = "providers_enabled must be a non-empty list of tpm, azure, gcp, aws."
  }
}

variable "trust_roots_pem" {
  description = "Fallback only: the pinned vendor roots as concatenated PEM (TRUST_ROOTS_PEM secret binding; each is checked against its built-in pin), used while the Durable Object holds none. Workers limit a binding to 5 KB, which the AMD roots alone exceed: prefer trust_dir, which loads the roots through the admin API after the deploy. Empty: no binding."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.trust_roots_pem == "" || (can(regex("-----BEGIN CERTIFICATE-----", var.trust_roots_pem)) && length(var.trust_roots_pem) <= 5120)
    error_message = "trust_roots_pem must be empty or PEM certificates of at most 5120 bytes (the Workers environment-variable size limit)."
  }
}

variable "policy_yaml" {
  description = "Fallback only: the join policy document (POLICY_YAML secret binding), used while the Durable Object holds none; at most 5 KB (Workers binding limit). Prefer policy_file, loaded through the admin API after the deploy. Empty: no binding."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.policy_yaml == "" || (try(yamldecode(var.policy_yaml).kind == "JoinPolicy", false) && length(var.policy_yaml) <= 5120)
    error_message = "policy_yaml must be empty or a JoinPolicy YAML document of at most 5120 bytes."
  }
}

variable "challenge_ttl_seconds" {
  description = "CHALLENGE_TTL_SECONDS (10-3600)."
  type        = number
  default     = 120
  validation {
    condition     = var.challenge_ttl_seconds >= 10 && var.challenge_ttl_seconds <= 3600 && floor(var.challenge_ttl_seconds) == var.challenge_ttl_seconds
    error_message = "challenge_ttl_seconds must be a whole number from 10 to 3600."
  }
}

variable "body_limit_bytes" {
  description = "BODY_LIMIT_BYTES: attest body cap (1024 to 16 MiB; default 1 MiB)."
  type        = number
  default     = 1048576
  validation {
    condition     = var.body_limit_bytes >= 1024 && var.body_limit_bytes <= 16777216 && floor(var.body_limit_bytes) == var.body_limit_bytes
    error_message = "body_limit_bytes must be a whole number from 1024 to 16777216."
  }
}

variable "log_level" {
  description = "LOG_LEVEL: debug, info, warn or error."
  type        = string
  default     = "info"
  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "durable_object_migration" {
  description = "Send wrangler.toml's Durable Object migration (tag v1: StateStoreObject as a SQLite class) with the upload. Needed on the first deploy; if the API refuses it on later uploads once tag v1 is applied (unverified here), set false."
  type        = bool
  default     = true
}

variable "zone_id" {
  description = "Zone of hostname / route_pattern (32 hex digits). Empty: neither is created (the Worker answers only on workers.dev, if enabled)."
  type        = string
  default     = ""
  validation {
    condition     = var.zone_id == "" || can(regex("^[0-9a-f]{32}$", var.zone_id))
    error_message = "zone_id must be empty or 32 lower-case hex digits."
  }
}

variable "hostname" {
  description = "Custom domain for the Worker (cloudflare_workers_custom_domain), e.g. attest.prod.example.com. Cloudflare issues its certificate: the nodes' ca_pin must then be the SPKI pin of that issuing CA, which Cloudflare may change — prefer route_pattern on a hostname whose certificate you control (Advanced Certificate / custom certificate)."
  type        = string
  default     = ""
  validation {
    condition     = var.hostname == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.hostname))
    error_message = "hostname must be empty or a lower-case DNS name."
  }
}

variable "route_pattern" {
  description = "Route pattern for the Worker in zone_id (cloudflare_workers_route), e.g. attest.prod.example.com/v1/*. Empty: no route."
  type        = string
  default     = ""
  validation {
    condition     = var.route_pattern == "" || can(regex("^(\\*\\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}/[A-Za-z0-9._~/*-]*$", var.route_pattern))
    error_message = "route_pattern must be empty or host/path with an optional leading *. and * wildcards."
  }
}

variable "provider_options" {
  description = "PROVIDER_OPTIONS: options by provider name, as under providers.<name>.options of the Node configuration (e.g. { tpm = { pinnedAkSha256 = [\"…\"] } }); JSON-encoded into a plain-text binding. Empty: no binding."
  type        = any
  default     = {}
  validation {
    condition     = can(keys(var.provider_options)) && alltrue([for k in try(keys(var.provider_options), []) : contains(["tpm", "azure", "gcp", "aws", "nvidia"], k)])
    error_message = "provider_options must be an object keyed by provider name (tpm, azure, gcp, aws, nvidia)."
  }
}

variable "config_refresh_seconds" {
  description = "CONFIG_REFRESH_SECONDS: how often each isolate checks the configuration version the admin API bumps (1-300; the Worker's default is 5)."
  type        = number
  default     = 5
  validation {
    condition     = var.config_refresh_seconds >= 1 && var.config_refresh_seconds <= 300 && floor(var.config_refresh_seconds) == var.config_refresh_seconds
    error_message = "config_refresh_seconds must be a whole number from 1 to 300."
  }
}

variable "admin_token" {
  description = "ADMIN_TOKEN secret binding (32-4096 visible ASCII characters, e.g. random_password): enables PUT /v1/admin/trust|policy and GET /v1/admin/config, and is what the loader (trust_dir / policy_file) authenticates with. Empty: no admin API, and no loader."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.admin_token == "" || (can(regex("^[!-~]+$", var.admin_token)) && length(var.admin_token) >= 32 && length(var.admin_token) <= 4096)
    error_message = "admin_token must be empty or 32 to 4096 visible ASCII characters."
  }
}

variable "release" {
  description = "Webhook-mode release (broker/release/runtime.worker.ts): cluster (RELEASE_CLUSTER, the policy's cluster name), api_server (RELEASE_API_SERVER, https URL the nodes reach), ca_pem (RELEASE_CA_PEM), issuance_window_seconds (RELEASE_ISSUANCE_WINDOW_SECONDS, 10-86400), tpm_seal (RELEASE_TPM_SEAL: off, when-available or require; seal the release to the node's EK and AK Name, as release.tpmSeal on Node), tokenreview_audiences (TOKENREVIEW_AUDIENCES), tokenreview_max_reviews (TOKENREVIEW_MAX_REVIEWS, 1-1000), tokenreview_bearer_sha256 (TOKENREVIEW_BEARER_SHA256, hex digests of the webhook credential; or give the credential itself in tokenreview_bearer_token). null: no release (attest answers RELEASE_UNAVAILABLE)."
  type = object({
    cluster                   = string
    api_server                = string
    ca_pem                    = string
    issuance_window_seconds   = optional(number)
    tpm_seal                  = optional(string)
    tokenreview_audiences     = optional(list(string), [])
    tokenreview_max_reviews   = optional(number)
    tokenreview_bearer_sha256 = optional(list(string), [])
  })
  default = null
  validation {
    condition = var.release == null ? true : (
      can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.release.cluster)) &&
      can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.release.api_server)) &&
      can(regex("-----BEGIN CERTIFICATE-----", var.release.ca_pem)) && length(var.release.ca_pem) <= 5120 &&
      (var.release.issuance_window_seconds == null ? true : (var.release.issuance_window_seconds >= 10 && var.release.issuance_window_seconds <= 86400 && floor(var.release.issuance_window_seconds) == var.release.issuance_window_seconds)) &&
      (var.release.tpm_seal == null ? true : contains(["off", "when-available", "require"], var.release.tpm_seal)) &&
      (var.release.tokenreview_max_reviews == null ? true : (var.release.tokenreview_max_reviews >= 1 && var.release.tokenreview_max_reviews <= 1000 && floor(var.release.tokenreview_max_reviews) == var.release.tokenreview_max_reviews)) &&
      alltrue([for a in var.release.tokenreview_audiences : can(regex("^[^,\\s]+$", a))]) &&
      alltrue([for h in var.release.tokenreview_bearer_sha256 : can(regex("^[0-9a-f]{64}$", h))])
    )
    error_message = "release: cluster a DNS-1123 label, api_server an https:// URL, ca_pem PEM (<= 5120 bytes), issuance_window_seconds 10-86400, tpm_seal off, when-available or require, tokenreview_max_reviews 1-1000, audiences without commas or spaces, tokenreview_bearer_sha256 lower-case hex SHA-256 digests."
  }
}

variable "tokenreview_bearer_token" {
  description = "TOKENREVIEW_BEARER_TOKEN secret binding: the credential the API server's webhook kubeconfig presents at POST /v1/tokenreview (>= 32 characters). With release set, this or release.tokenreview_bearer_sha256 is required (an unauthenticated webhook is never served). Empty: no binding."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.tokenreview_bearer_token == "" || (can(regex("^[!-~]+$", var.tokenreview_bearer_token)) && length(var.tokenreview_bearer_token) >= 32 && length(var.tokenreview_bearer_token) <= 4096)
    error_message = "tokenreview_bearer_token must be empty or 32 to 4096 visible ASCII characters."
  }
}

variable "kms" {
  description = "Disk-key KMS (KMS_KIND and the non-secret settings of that kind): kind none|local|aws-kms|gcp-kms|azure-keyvault; aws_kms_key_id, aws_region, aws_kms_endpoint; gcp_kms_key_name, gcp_kms_endpoint; azure_keyvault_url, azure_key_name, azure_key_version, azure_tenant_id, azure_client_id, azure_authority_host. Credentials go in kms_credentials. null: KMS_KIND unset (none: want disk-key is refused)."
  type = object({
    kind                 = string
    aws_kms_key_id       = optional(string, "")
    aws_region           = optional(string, "")
    aws_kms_endpoint     = optional(string, "")
    gcp_kms_key_name     = optional(string, "")
    gcp_kms_endpoint     = optional(string, "")
    azure_keyvault_url   = optional(string, "")
    azure_key_name       = optional(string, "")
    azure_key_version    = optional(string, "")
    azure_tenant_id      = optional(string, "")
    azure_client_id      = optional(string, "")
    azure_authority_host = optional(string, "")
  })
  default = null
  validation {
    condition = var.kms == null ? true : (
      contains(["none", "local", "aws-kms", "gcp-kms", "azure-keyvault"], var.kms.kind) &&
      (var.kms.kind != "aws-kms" ? true : (var.kms.aws_kms_key_id != "" && can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.kms.aws_region)))) &&
      (var.kms.kind != "gcp-kms" ? true : can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms.gcp_kms_key_name))) &&
      (var.kms.kind != "azure-keyvault" ? true : (can(regex("^https://", var.kms.azure_keyvault_url)) && var.kms.azure_key_name != "" && var.kms.azure_tenant_id != "" && var.kms.azure_client_id != "")) &&
      alltrue([for u in [var.kms.aws_kms_endpoint, var.kms.gcp_kms_endpoint, var.kms.azure_authority_host] : u == "" || can(regex("^https://", u))])
    )
    error_message = "kms: kind one of none, local, aws-kms, gcp-kms, azure-keyvault; aws-kms needs aws_kms_key_id and aws_region; gcp-kms needs gcp_kms_key_name (projects/…/cryptoKeys/…); azure-keyvault needs an https azure_keyvault_url, azure_key_name, azure_tenant_id, azure_client_id; endpoints are https:// URLs."
  }
}

variable "kms_credentials" {
  description = "Secret bindings of the KMS kind: local_kek (KMS_LOCAL_KEK, base64 of 32 bytes), aws_access_key_id, aws_secret_access_key, aws_session_token (AWS_*), gcp_service_account_json (GCP_SERVICE_ACCOUNT_JSON), azure_client_secret (AZURE_CLIENT_SECRET). Empty fields: no binding."
  type = object({
    local_kek                = optional(string, "")
    aws_access_key_id        = optional(string, "")
    aws_secret_access_key    = optional(string, "")
    aws_session_token        = optional(string, "")
    gcp_service_account_json = optional(string, "")
    azure_client_secret      = optional(string, "")
  })
  default   = {}
  sensitive = true
  validation {
    condition     = (var.kms_credentials.local_kek == "" || can(regex("^[A-Za-z0-9+/]{43}=$", var.kms_credentials.local_kek))) && (var.kms_credentials.gcp_service_account_json == "" || can(jsondecode(var.kms_credentials.gcp_service_account_json).client_email))
    error_message = "kms_credentials: local_kek must be base64 of 32 bytes; gcp_service_account_json must be a service-account key JSON (with client_email)."
  }
}

variable "tracing" {
  description = "OpenTelemetry tracing (docs/operations.md, Tracing): otlp_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, the OTLP/HTTP base URL; /v1/traces is appended), service_name (OTEL_SERVICE_NAME), sample_ratio (TRACING_SAMPLE_RATIO, 0-1, new traces recorded). null: tracing off."
  type = object({
    otlp_endpoint = string
    service_name  = optional(string)
    sample_ratio  = optional(number)
  })
  default = null
  validation {
    condition = var.tracing == null ? true : (
      can(regex("^https?://[^/?#@\\s]+(/[^?#\\s]*)?$", var.tracing.otlp_endpoint)) &&
      (var.tracing.service_name == null ? true : (length(var.tracing.service_name) >= 1 && length(var.tracing.service_name) <= 256)) &&
      (var.tracing.sample_ratio == null ? true : (var.tracing.sample_ratio >= 0 && var.tracing.sample_ratio <= 1))
    )
    error_message = "tracing: otlp_endpoint an http(s) URL without credentials (put them in tracing_headers), service_name 1-256 characters, sample_ratio 0-1."
  }
}

variable "tracing_headers" {
  description = "TRACING_HEADERS secret binding: a JSON object of headers sent with each trace export (e.g. jsonencode({ \"x-api-key\" = \"...\" })), never logged. Empty: no binding."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.tracing_headers == "" || can(keys(jsondecode(var.tracing_headers)))
    error_message = "tracing_headers must be empty or a JSON object of header names to values."
  }
}

variable "trust_dir" {
  description = "Trust directory as `attest-broker trust fetch|import` writes it (<pin-id>.pem per root). Given (with admin_token): after the script is uploaded, `attest-broker worker load` PUTs the roots to the Worker's admin API (terraform_data.load); again whenever a root file changes. Empty: roots are not loaded by this module."
  type        = string
  default     = ""
  validation {
    condition     = var.trust_dir == "" ? true : length(fileset(var.trust_dir, "*.pem")) > 0
    error_message = "trust_dir must be empty or a directory holding <pin-id>.pem files (attest-broker trust fetch --dir DIR)."
  }
}

variable "policy_file" {
  description = "Join policy YAML loaded through the admin API after the upload (with admin_token; `attest-broker worker load --policy`), again whenever it changes. Not size-limited like policy_yaml. Empty: the policy is not loaded by this module."
  type        = string
  default     = ""
  validation {
    condition     = var.policy_file == "" ? true : (can(regex("\\.ya?ml$", var.policy_file)) && fileexists(var.policy_file))
    error_message = "policy_file must be empty or an existing .yaml/.yml file."
  }
}

variable "admin_url" {
  description = "Base URL the loader calls (its route must cover /v1/admin/*). Empty: the broker_url output (custom domain, else the route's host)."
  type        = string
  default     = ""
  validation {
    condition     = var.admin_url == "" || can(regex("^https://[^/?#\\s]+/?$", var.admin_url))
    error_message = "admin_url must be empty or an https:// origin (no path)."
  }
}

variable "loader_command" {
  description = "How the loader runs attest-broker on the machine running terraform (needs Node >= 20.19 and the package installed there)."
  type        = string
  default     = "npx --no-install attest-broker"
  validation {
    condition     = trimspace(var.loader_command) != "" && !can(regex("[;&|`$<>]", var.loader_command))
    error_message = "loader_command must be a non-empty command without shell operators (; & | ` $ < >)."
  }
}

variable "loader_wait_seconds" {
  description = "How long the loader waits for /readyz 200 after loading both roots and policy (it fails the apply otherwise, printing the Worker's reasons)."
  type        = number
  default     = 30
  validation {
    condition     = var.loader_wait_seconds >= 0 && var.loader_wait_seconds <= 600 && floor(var.loader_wait_seconds) == var.loader_wait_seconds
    error_message = "loader_wait_seconds must be a whole number from 0 to 600."
  }
}
