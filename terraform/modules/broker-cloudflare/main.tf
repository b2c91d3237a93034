# terraform/modules/broker-cloudflare — the broker as a Cloudflare Worker: the bindings
# broker/worker.ts reads (its Env interface) and wrangler.toml declares, the Durable Object
# namespace STATE of class StateStoreObject with wrangler.toml's migration (tag v1, SQLite class),
# and a custom domain or a route.
#
# What the Worker does NOT do yet (broker/worker.ts on main): release. WORKER_HOOKS.buildRelease
# is never set there, so every admitted node gets RELEASE_UNAVAILABLE; webhook-mode tokens and KMS
# disk keys on Workers are planned (issue 18). This module deploys what exists.

resource "cloudflare_workers_script" "broker" {
  account_id          = var.account_id
  script_name         = var.script_name
  content_file        = var.script_file
  content_sha256      = filesha256(var.script_file)
  main_module         = var.main_module
  compatibility_date  = var.compatibility_date
  compatibility_flags = ["nodejs_compat"]

  bindings = [
    { type = "durable_object_namespace", name = "STATE", class_name = "StateStoreObject" },
    { type = "plain_text", name = "PROVIDERS", text = join(",", var.providers_enabled) },
    { type = "plain_text", name = "CHALLENGE_TTL_SECONDS", text = tostring(var.challenge_ttl_seconds) },
    { type = "plain_text", name = "BODY_LIMIT_BYTES", text = tostring(var.body_limit_bytes) },
    { type = "plain_text", name = "LOG_LEVEL", text = var.log_level },
    { type = "secret_text", name = "TRUST_ROOTS_PEM", text = var.trust_roots_pem },
    { type = "secret_text", name = "POLICY_YAML", text = var.policy_yaml },
  ]

  # wrangler.toml [[migrations]] tag = "v1", new_sqlite_classes = ["StateStoreObject"].
  migrations = var.durable_object_migration ? {
    new_tag            = "v1"
    new_sqlite_classes = ["StateStoreObject"]
  } : null

  observability = {
    enabled = true
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
