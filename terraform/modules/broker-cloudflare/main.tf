# terraform/modules/broker-cloudflare — the broker as a Cloudflare Worker: the bindings
# broker/worker.ts reads (its Env interface, release included) and wrangler.toml declares, the
# Durable Object namespace STATE of class StateStoreObject with wrangler.toml's migration (tag v1,
# SQLite class), a custom domain or a route, and — given trust_dir / policy_file and
# admin_token — the roots and the policy loaded through the Worker's admin API after the upload
# (`attest-broker worker load`, terraform_data.load). docs/deploy.md, "Cloudflare Workers".

locals {
  # Always bound.
  fixed_bindings = [
    { type = "durable_object_namespace", name = "STATE", class_name = "StateStoreObject" },
    { type = "plain_text", name = "PROVIDERS", text = join(",", var.providers_enabled) },
    { type = "plain_text", name = "CHALLENGE_TTL_SECONDS", text = tostring(var.challenge_ttl_seconds) },
    { type = "plain_text", name = "BODY_LIMIT_BYTES", text = tostring(var.body_limit_bytes) },
    { type = "plain_text", name = "LOG_LEVEL", text = var.log_level },
    { type = "plain_text", name = "CONFIG_REFRESH_SECONDS", text = tostring(var.config_refresh_seconds) },
  ]
  # Bound when not empty (an unset binding is the Worker's default).
  plain_optional = [
    { name = "PROVIDER_OPTIONS", text = length(var.provider_options) > 0 ? jsonencode(var.provider_options) : "" },
    { name = "RELEASE_CLUSTER", text = try(var.release.cluster, "") },
    { name = "RELEASE_API_SERVER", text = try(var.release.api_server, "") },
    { name = "RELEASE_CA_PEM", text = try(var.release.ca_pem, "") },
    { name = "RELEASE_ISSUANCE_WINDOW_SECONDS", text = try(var.release.issuance_window_seconds == null ? "" : tostring(var.release.issuance_window_seconds), "") },
    { name = "RELEASE_TPM_SEAL", text = try(var.release.tpm_seal == null ? "" : var.release.tpm_seal, "") },
    { name = "TOKENREVIEW_BEARER_SHA256", text = try(join(",", var.release.tokenreview_bearer_sha256), "") },
    { name = "TOKENREVIEW_AUDIENCES", text = try(join(",", var.release.tokenreview_audiences), "") },
    { name = "TOKENREVIEW_MAX_REVIEWS", text = try(var.release.tokenreview_max_reviews == null ? "" : tostring(var.release.tokenreview_max_reviews), "") },
    { name = "KMS_KIND", text = try(var.kms.kind, "") },
    { name = "AWS_KMS_KEY_ID", text = try(var.kms.aws_kms_key_id, "") },
    { name = "AWS_REGION", text = try(var.kms.aws_region, "") },
    { name = "AWS_KMS_ENDPOINT", text = try(var.kms.aws_kms_endpoint, "") },
    { name = "GCP_KMS_KEY_NAME", text = try(var.kms.gcp_kms_key_name, "") },
    { name = "GCP_KMS_ENDPOINT", text = try(var.kms.gcp_kms_endpoint, "") },
    { name = "AZURE_KEYVAULT_URL", text = try(var.kms.azure_keyvault_url, "") },
    { name = "AZURE_KEY_NAME", text = try(var.kms.azure_key_name, "") },
    { name = "AZURE_KEY_VERSION", text = try(var.kms.azure_key_version, "") },
    { name = "AZURE_TENANT_ID", text = try(var.kms.azure_tenant_id, "") },
    { name = "AZURE_CLIENT_ID", text = try(var.kms.azure_client_id, "") },
    { name = "AZURE_AUTHORITY_HOST", text = try(var.kms.azure_authority_host, "") },
    { name = "OTEL_EXPORTER_OTLP_ENDPOINT", text = try(var.tracing.otlp_endpoint, "") },
    { name = "OTEL_SERVICE_NAME", text = try(var.tracing.service_name == null ? "" : var.tracing.service_name, "") },
    { name = "TRACING_SAMPLE_RATIO", text = try(var.tracing.sample_ratio == null ? "" : tostring(var.tracing.sample_ratio), "") },
  ]
  # Secret text, from sensitive variables only; bound when not empty.
  secret_optional = [
    { name = "TRUST_ROOTS_PEM", text = var.trust_roots_pem },
    { name = "POLICY_YAML", text = var.policy_yaml },
    { name = "ADMIN_TOKEN", text = var.admin_token },
    { name = "TOKENREVIEW_BEARER_TOKEN", text = var.tokenreview_bearer_token },
    { name = "KMS_LOCAL_KEK", text = var.kms_credentials.local_kek },
    { name = "AWS_ACCESS_KEY_ID", text = var.kms_credentials.aws_access_key_id },
    { name = "AWS_SECRET_ACCESS_KEY", text = var.kms_credentials.aws_secret_access_key },
    { name = "AWS_SESSION_TOKEN", text = var.kms_credentials.aws_session_token },
    { name = "GCP_SERVICE_ACCOUNT_JSON", text = var.kms_credentials.gcp_service_account_json },
    { name = "AZURE_CLIENT_SECRET", text = var.kms_credentials.azure_client_secret },
    { name = "TRACING_HEADERS", text = var.tracing_headers },
  ]
  # Whether each secret is set is not itself secret (the values stay marked).
  secret_set = { for b in local.secret_optional : b.name => nonsensitive(b.text != "") }
  bindings = concat(
    local.fixed_bindings,
    [for b in local.plain_optional : { type = "plain_text", name = b.name, text = b.text } if b.text != ""],
    [for b in local.secret_optional : { type = "secret_text", name = b.name, text = b.text } if local.secret_set[b.name]],
  )

  kms_kind     = try(var.kms.kind, "none")
  kms_secrets  = { "none" = [], "local" = ["KMS_LOCAL_KEK"], "aws-kms" = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "gcp-kms" = ["GCP_SERVICE_ACCOUNT_JSON"], "azure-keyvault" = ["AZURE_CLIENT_SECRET"] }
  broker_url   = var.hostname != "" ? "https://${var.hostname}" : (var.route_pattern != "" ? "https://${trimprefix(split("/", var.route_pattern)[0], "*.")}" : "")
  admin_url    = var.admin_url != "" ? trimsuffix(var.admin_url, "/") : local.broker_url
  load         = var.trust_dir != "" || var.policy_file != ""
  load_args    = concat(["worker", "load", "--url", local.admin_url], var.trust_dir != "" ? ["--trust-dir", abspath(var.trust_dir)] : [], var.policy_file != "" ? ["--policy", abspath(var.policy_file)] : [], var.trust_dir != "" && var.policy_file != "" ? ["--require-ready", "--wait", tostring(var.loader_wait_seconds)] : ["--wait", "0"])
  load_command = join(" ", concat([var.loader_command], [for a in local.load_args : format("'%s'", replace(a, "'", "'\\''"))]))
}

resource "cloudflare_workers_script" "broker" {
  account_id          = var.account_id
  script_name         = var.script_name
  content_file        = var.script_file
  content_sha256      = filesha256(var.script_file)
  main_module         = var.main_module
  compatibility_date  = var.compatibility_date
  compatibility_flags = ["nodejs_compat"]

  bindings = local.bindings

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
      condition     = var.release == null || local.secret_set["TOKENREVIEW_BEARER_TOKEN"] || length(try(var.release.tokenreview_bearer_sha256, [])) > 0
      error_message = "release needs the API server's webhook credential: tokenreview_bearer_token, or release.tokenreview_bearer_sha256 (an unauthenticated webhook is never served)."
    }
    precondition {
      condition     = alltrue([for n in lookup(local.kms_secrets, local.kms_kind, []) : local.secret_set[n]])
      error_message = "kms.kind ${local.kms_kind} needs kms_credentials: local → local_kek; aws-kms → aws_access_key_id and aws_secret_access_key; gcp-kms → gcp_service_account_json; azure-keyvault → azure_client_secret."
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

# After the upload: the roots and the policy go into the Durable Object through the admin API
# (broker/worker-admin.ts) with `attest-broker worker load`, which skips what the Worker already
# holds. Re-run when a root file, the policy, the URL or the script name changes. The admin token
# reaches the command through its environment, never its command line.
resource "terraform_data" "load" {
  count = local.load ? 1 : 0

  triggers_replace = {
    script = cloudflare_workers_script.broker.script_name
    url    = local.admin_url
    roots  = var.trust_dir == "" ? "" : sha256(join(",", [for f in sort(fileset(var.trust_dir, "*.pem")) : "${f}:${filesha256("${var.trust_dir}/${f}")}"]))
    policy = var.policy_file == "" ? "" : filesha256(var.policy_file)
  }

  provisioner "local-exec" {
    command = local.load_command
    # nonsensitive: Terraform would otherwise hide the loader's progress and refusal messages
    # (which never contain the token). The value is not printed, not in the plan and not in the
    # state (provisioner settings are not stored); it exists only in the command's environment.
    environment = {
      ATTEST_BROKER_ADMIN_TOKEN = nonsensitive(var.admin_token)
    }
  }

  depends_on = [cloudflare_workers_script.broker, cloudflare_workers_custom_domain.broker, cloudflare_workers_route.broker]

  lifecycle {
    precondition {
      condition     = local.secret_set["ADMIN_TOKEN"] && local.admin_url != ""
      error_message = "trust_dir / policy_file are loaded through the admin API: set admin_token, and hostname, route_pattern or admin_url."
    }
  }
}
