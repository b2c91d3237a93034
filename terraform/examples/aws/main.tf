# terraform/examples/aws — a self-managed (kubeadm) cluster on EC2 with NitroTPM nodes:
# the disk-key KMS key and IRSA role (iam-aws), the broker on the control plane so it runs before
# any worker exists (broker-kubernetes), its RBAC (cluster-rbac), and the nodes' launch template
# with user-data that attests, then runs kubeadm join (user-data).

module "iam" {
  source            = "../../modules/iam-aws"
  name              = "attest-broker-${var.cluster}"
  clusters          = [var.cluster]
  key_admin_arns    = var.key_admin_arns
  nitrotpm_pcrs     = var.node_image_pcrs
  identity_mode     = "irsa"
  oidc_provider_arn = var.oidc_provider_arn
}

module "broker" {
  source                      = "../../modules/broker-kubernetes"
  providers_enabled           = ["aws"]
  clusters                    = { (var.cluster) = var.api_server_url }
  policy_yaml                 = templatefile("${path.module}/policy.yaml.tftpl", { cluster = var.cluster, version = "1", regions = [var.region], image_name = "node-image", pcrs = var.node_image_pcrs })
  kms                         = module.iam.broker_kms_config
  service_account_annotations = module.iam.service_account_annotations
  tls_cert_chain_pem          = var.tls_cert_chain_pem
  tls_private_key_pem         = var.tls_private_key_pem
  run_on_control_plane        = true
  service_type                = "LoadBalancer"
  service_annotations = {
    "service.beta.kubernetes.io/aws-load-balancer-type"   = "nlb"
    "service.beta.kubernetes.io/aws-load-balancer-scheme" = "internal"
  }
}

module "rbac" {
  source             = "../../modules/cluster-rbac"
  broker_subject     = module.broker.service_account
  approver_namespace = module.broker.namespace
  kubeadm            = true
}

module "user_data" {
  source       = "../../modules/user-data"
  broker_url   = "https://${var.broker_hostname}"
  ca_pin       = var.ca_pin
  cluster      = var.cluster
  platform     = "aws"
  kubeadm_join = true
}

resource "aws_launch_template" "nodes" {
  name_prefix   = "${var.cluster}-attested-"
  image_id      = var.node_ami_id
  instance_type = var.node_instance_type
  user_data     = module.user_data.user_data_multipart_base64

  metadata_options {
    http_tokens = "required"
  }
}
