# terraform/examples/azure — the broker in an AKS cluster with Azure Workload Identity: Key Vault
# key, managed identity and federated credential (iam-azure), the broker on the system pool
# (broker-kubernetes), its RBAC (cluster-rbac), and the confidential-VM nodes' custom_data
# (user-data; attach it to your VM scale set).

module "iam" {
  source              = "../../modules/iam-azure"
  name                = "attest-${var.cluster}"
  resource_group_name = var.resource_group_name
  location            = data.azurerm_kubernetes_cluster.cluster.location
  key_vault_id        = var.key_vault_id
  oidc_issuer_url     = data.azurerm_kubernetes_cluster.cluster.oidc_issuer_url
}

module "broker" {
  source                      = "../../modules/broker-kubernetes"
  providers_enabled           = ["azure"]
  clusters                    = { (var.cluster) = var.api_server_url }
  policy_yaml                 = templatefile("${path.module}/policy.yaml.tftpl", { cluster = var.cluster, version = "1", image_name = "cvm-node-image", measurements = var.snp_measurements })
  kms                         = module.iam.broker_kms_config
  service_account_annotations = module.iam.service_account_annotations
  pod_labels                  = module.iam.pod_labels
  tls_cert_chain_pem          = var.tls_cert_chain_pem
  tls_private_key_pem         = var.tls_private_key_pem
  node_selector               = { "kubernetes.azure.com/agentpool" = var.system_node_pool }
  service_type                = "LoadBalancer"
  service_annotations         = { "service.beta.kubernetes.io/azure-load-balancer-internal" = "true" }
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
  platform   = "azure"
}
