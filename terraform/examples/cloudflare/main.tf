# terraform/examples/cloudflare — the broker as a Worker for one cluster (broker-cloudflare) and
# the nodes' user-data pointing at it (user-data). After the script upload the module loads the
# pinned roots (trust_dir, as `attest-broker trust fetch` writes it) and the join policy through
# the Worker's admin API (`npx attest-broker worker load`, run on the machine running terraform,
# so run it from a checkout or a directory where attest-broker is installed). With
# release_api_server set the Worker also releases webhook-mode bootstrap tokens (TokenReview at
# POST /v1/tokenreview); without it attest answers RELEASE_UNAVAILABLE.

module "broker" {
  source            = "../../modules/broker-cloudflare"
  account_id        = var.account_id
  script_name       = "attest-broker-${var.cluster}"
  script_file       = var.script_file
  providers_enabled = ["gcp"]
  admin_token       = var.admin_token
  trust_dir         = var.trust_dir
  policy_file       = var.policy_file
  zone_id           = var.zone_id
  route_pattern     = "${var.broker_hostname}/*"

  release = var.release_api_server == "" ? null : {
    cluster    = var.cluster
    api_server = var.release_api_server
    ca_pem     = file(var.release_ca_file)
  }
  tokenreview_bearer_token = var.tokenreview_bearer_token
}

module "user_data" {
  source     = "../../modules/user-data"
  broker_url = module.broker.broker_url
  ca_pin     = var.ca_pin
  cluster    = var.cluster
  platform   = "gcp"
}
