# terraform/examples/gcp — the broker in a GKE cluster with Workload Identity: Cloud KMS key and
# GSA (iam-gcp), the broker on the system node pool (broker-kubernetes), its RBAC (cluster-rbac),
# and an instance template for Shielded VM nodes with the attest-broker user-data (user-data).
# The nodes join with a bootstrap token through the kubelet's TLS bootstrap (docs/join.md); GKE's
# own node pools bootstrap themselves with metadata GKE manages, so they are not this path.

locals {
  region = length(split("-", var.gke_location)) == 3 ? join("-", slice(split("-", var.gke_location), 0, 2)) : var.gke_location
}

module "iam" {
  source     = "../../modules/iam-gcp"
  project_id = var.project_id
  location   = local.region
  name       = "attest-${var.cluster}"
}

module "broker" {
  source                      = "../../modules/broker-kubernetes"
  providers_enabled           = ["gcp"]
  clusters                    = { (var.cluster) = var.api_server_url }
  policy_yaml                 = templatefile("${path.module}/policy.yaml.tftpl", { cluster = var.cluster, version = "1", projects = [var.project_id], zones = var.zones, instance_names = ["${var.cluster}-node-*"], image_name = "node-image", pcrs = var.node_image_pcrs })
  kms                         = module.iam.broker_kms_config
  service_account_annotations = module.iam.service_account_annotations
  tls_cert_chain_pem          = var.tls_cert_chain_pem
  tls_private_key_pem         = var.tls_private_key_pem
  node_selector               = { "cloud.google.com/gke-nodepool" = var.system_node_pool }
  service_type                = "LoadBalancer"
  service_annotations         = { "networking.gke.io/load-balancer-type" = "Internal" }
}

module "rbac" {
  source             = "../../modules/cluster-rbac"
  broker_subject     = module.broker.service_account
  approver_namespace = module.broker.namespace
}

module "user_data" {
  source     = "../../modules/user-data"
  broker_url = "https://${var.broker_hostname}"
  ca_pin     = var.ca_pin
  cluster    = var.cluster
  platform   = "gcp"
}

resource "google_compute_instance_template" "nodes" {
  name_prefix  = "${var.cluster}-node-"
  project      = var.project_id
  machine_type = var.node_machine_type

  disk {
    source_image = var.node_source_image
    boot         = true
    auto_delete  = true
  }

  network_interface {
    subnetwork = var.node_subnetwork
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    user-data = module.user_data.user_data
  }

  lifecycle {
    create_before_destroy = true
  }
}
