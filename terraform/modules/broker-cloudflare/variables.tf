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
  description = "The pinned vendor roots as concatenated PEM (TRUST_ROOTS_PEM secret binding; each is checked against its built-in pin). Workers limit a binding to 5 KB, which the AMD roots alone exceed: load larger root sets after the deploy with the Worker's admin API (PUT /v1/admin/trust), which stores them in the Durable Object."
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("-----BEGIN CERTIFICATE-----", var.trust_roots_pem)) && length(var.trust_roots_pem) <= 5120
    error_message = "trust_roots_pem must be PEM certificates of at most 5120 bytes (the Workers environment-variable size limit)."
  }
}

variable "policy_yaml" {
  description = "The join policy document (POLICY_YAML secret binding), at most 5 KB (Workers binding limit)."
  type        = string
  sensitive   = true
  validation {
    condition     = try(yamldecode(var.policy_yaml).kind == "JoinPolicy", false) && length(var.policy_yaml) <= 5120
    error_message = "policy_yaml must be a JoinPolicy YAML document of at most 5120 bytes."
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

variable "settings" {
  description = "Plain-text bindings beyond the fixed ones: release (RELEASE_*, TOKENREVIEW_* but the token), KMS (KMS_KIND, AWS_*/GCP_*/AZURE_* but credentials), PROVIDER_OPTIONS, CONFIG_REFRESH_SECONDS. Names are checked against local.setting_names."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.settings) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "settings keys are binding names in upper case (e.g. RELEASE_API_SERVER)."
  }
}

variable "secrets" {
  description = "Secret bindings: ADMIN_TOKEN (>= 32 characters; enables PUT /v1/admin/trust|policy), TOKENREVIEW_BEARER_TOKEN, KMS_LOCAL_KEK and cloud credentials. Names are checked against local.secret_names."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in keys(nonsensitive(var.secrets)) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secrets keys are binding names in upper case (e.g. ADMIN_TOKEN)."
  }
}
