# terraform/examples/cloudflare — the broker as a Worker for one cluster (broker-cloudflare) and
# the nodes' user-data pointing at it (user-data). The Worker admits nodes but does not release
# yet (RELEASE_UNAVAILABLE: broker/worker.ts has no release on main), so this is for evaluating
# admission; the per-cluster release on Workers is planned (issue 18).

module "broker" {
  source            = "../../modules/broker-cloudflare"
  account_id        = var.account_id
  script_name       = "attest-broker-${var.cluster}"
  script_file       = var.script_file
  providers_enabled = ["gcp"]
  trust_roots_pem   = file(var.trust_roots_pem_file)
  policy_yaml       = file(var.policy_file)
  zone_id           = var.zone_id
  route_pattern     = "${var.broker_hostname}/*"
}

module "user_data" {
  source     = "../../modules/user-data"
  broker_url = module.broker.broker_url
  ca_pin     = var.ca_pin
  cluster    = var.cluster
  platform   = "gcp"
}
