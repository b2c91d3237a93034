# terraform/modules/broker-offcluster — the files of a broker that runs OUTSIDE the cluster (a VM,
# another cluster) and reaches each API server with an exec-credential kubeconfig, as EKS, GKE and
# AKS authenticate (docs/deploy.md "The broker outside the cluster"): config.yaml (modules/config,
# a byte copy of broker-kubernetes/modules/config) and per cluster a kubeconfig whose user runs
# `aws eks get-token`, `gke-gcloud-auth-plugin` or `kubelogin get-token`. How the files reach the
# machine (cloud-init write_files, a configuration-management tool, local_file) is the caller's.

locals {
  dir = trimsuffix(var.config_dir, "/")
  # The well-known application ID of the AKS Entra ID server (the token's audience).
  aks_server_id = "6dae42f8-4368-4678-94ff-3960e28e3630"
  # One shape for every platform, so the conditional below has one type.
  exec = { for name, c in var.clusters : name => {
    apiVersion = "client.authentication.k8s.io/v1beta1"
    command    = c.platform == "eks" ? "aws" : c.platform == "gke" ? "gke-gcloud-auth-plugin" : "kubelogin"
    args = c.platform == "eks" ? concat(
      ["--region", try(c.eks.region, ""), "eks", "get-token", "--cluster-name", try(c.eks.cluster_name, ""), "--output", "json"],
      try(c.eks.role_arn, null) == null ? [] : ["--role-arn", c.eks.role_arn],
      ) : c.platform == "aks" ? concat(
      ["get-token", "--login", try(c.aks.login, "msi"), "--server-id", local.aks_server_id],
      try(c.aks.client_id, null) == null ? [] : ["--client-id", c.aks.client_id],
      try(c.aks.tenant_id, null) == null ? [] : ["--tenant-id", c.aks.tenant_id],
    ) : []
    env = concat(
      c.platform == "eks" && try(c.eks.profile, null) != null ? [{ name = "AWS_PROFILE", value = c.eks.profile }] : [],
      [for k in sort(keys(c.env)) : { name = k, value = c.env[k] }],
    )
    # The broker has no terminal (Always is refused when the kubeconfig is loaded).
    interactiveMode    = "Never"
    provideClusterInfo = c.platform == "gke"
    installHint = (c.platform == "eks" ? "Install the AWS CLI v2 (aws eks get-token) on the broker's host" :
      c.platform == "gke" ? "Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)" :
    "Install kubelogin (https://azure.github.io/kubelogin/install.html)")
  } }
  kubeconfigs = { for name, c in var.clusters : name => yamlencode({
    apiVersion        = "v1"
    kind              = "Config"
    clusters          = [{ name = name, cluster = { server = coalesce(c.endpoint, c.api_server), "certificate-authority-data" = base64encode(c.ca_pem) } }]
    users             = [{ name = "attest-broker", user = { exec = local.exec[name] } }]
    contexts          = [{ name = name, context = { cluster = name, user = "attest-broker" } }]
    "current-context" = name
  }) }
  kubeconfig_paths = { for name, c in var.clusters : name => "${local.dir}/kube/${name}.kubeconfig" }
}

module "config" {
  source                = "./modules/config"
  config_dir            = local.dir
  trust_dir             = var.trust_dir
  port                  = var.port
  tls                   = var.tls
  trusted_proxies       = var.trusted_proxies
  providers_enabled     = var.providers_enabled
  store_url             = var.store_url
  clusters              = { for name, c in var.clusters : name => c.api_server }
  kubeconfigs           = { for name, c in var.clusters : name => {} }
  approver              = var.approver
  kms                   = var.kms
  challenge_ttl_seconds = var.challenge_ttl_seconds
  log_level             = var.log_level
}
