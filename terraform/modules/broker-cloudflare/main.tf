# terraform/modules/broker-cloudflare — the broker as a Cloudflare Worker: the bindings
# broker/worker.ts reads (its Env interface) and wrangler.toml declares, the Durable Object
# namespace STATE of class StateStoreObject with wrangler.toml's migration (tag v1, SQLite class),
# and a custom domain or a route.
#
# Release (webhook-mode tokens, KMS disk keys), provider options and the admin API are set with
# `settings` (plain text) and `secrets` (secret text): the other bindings of broker/worker.ts's
# Env, each name checked against the lists below (docs/deploy.md, "Cloudflare Workers").

locals {
  setting_names = [
    "PROVIDER_OPTIONS", "CONFIG_REFRESH_SECONDS", "RELEASE_CLUSTER", "RELEASE_API_SERVER", "RELEASE_CA_PEM",
    "RELEASE_ISSUANCE_WINDOW_SECONDS", "TOKENREVIEW_BEARER_SHA256", "TOKENREVIEW_AUDIENCES", "TOKENREVIEW_MAX_REVIEWS",
    "KMS_KIND", "AWS_KMS_KEY_ID", "AWS_REGION", "AWS_KMS_ENDPOINT", "GCP_KMS_KEY_NAME", "GCP_KMS_ENDPOINT",
    "AZURE_KEYVAULT_URL", "AZURE_KEY_NAME", "AZURE_KEY_VERSION", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST",
  ]
  secret_names = [
    "ADMIN_TOKEN", "TOKENREVIEW_BEARER_TOKEN", "KMS_LOCAL_KEK", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "GCP_SERVICE_ACCOUNT_JSON", "AZURE_CLIENT_SECRET",
  ]
  fixed_bindings = [
    { type = "durable_object_namespace", name = "STATE", class_name = "StateStoreObject" },
    { type = "plain_text", name = "PROVIDERS", text = join(",", var.providers_enabled) },
    { type = "plain_text", name = "CHALLENGE_TTL_SECONDS", text = tostring(var.challenge_ttl_seconds) },
    { type = "plain_text", name = "BODY_LIMIT_BYTES", text = tostring(var.body_limit_bytes) },
    { type = "plain_text", name = "LOG_LEVEL", text = var.log_level },
    { type = "secret_text", name = "TRUST_ROOTS_PEM", text = var.trust_roots_pem },
    { type = "secret_text", name = "POLICY_YAML", text = var.policy_yaml },
  ]
}

resource "cloudflare_workers_script" "broker" {
  account_id          = var.account_id
  script_name         = var.script_name
  content_file        = var.script_file
  content_sha256      = filesha256(var.script_file)
  main_module         = var.main_module
  compatibility_date  = var.compatibility_date
  compatibility_flags = ["nodejs_compat"]

  bindings = concat(
    local.fixed_bindings,
    [for k in sort(keys(var.settings)) : { type = "plain_text", name = k, text = var.settings[k] }],
    [for k in sort(keys(nonsensitive(var.secrets))) : { type = "secret_text", name = k, text = var.secrets[k] }],
  )

  # wrangler.toml [[migrations]] tag = "v1", new_sqlite_classes = ["StateStoreObject"].
  migrations = var.durable_object_migration ? {
    new_tag            = "v1"
    new_sqlite_classes = ["StateStoreObject"]
  } : null

  observability = {
    enabled = true
  }

  lifecycle {
    precondition {
      condition     = alltrue([for k in keys(var.settings) : contains(local.setting_names, k)]) && alltrue([for k in keys(nonsensitive(var.secrets)) : contains(local.secret_names, k)])
      error_message = "settings and secrets take only the binding names broker/worker.ts reads (locals setting_names / secret_names); a secret value goes in secrets, never in settings."
    }
  }
}

resource "cloudflare_workers_custom_domain" "broker" {
  count      = var.hostname != "" ? 1 : 0
  account_id = var.account_id
  zone_id    = var.zone_id
  hostname   = var.hostname
  service    = cloudflare_workers_script.broker.script_name

  lifecycle {
    precondition {
      condition     = var.zone_id != ""
      error_message = "hostname needs zone_id."
    }
  }
}

resource "cloudflare_workers_route" "broker" {
  count   = var.route_pattern != "" ? 1 : 0
  zone_id = var.zone_id
  pattern = var.route_pattern
  script  = cloudflare_workers_script.broker.script_name

  lifecycle {
    precondition {
      condition     = var.zone_id != ""
      error_message = "route_pattern needs zone_id."
    }
  }
}
