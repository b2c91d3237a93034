output "config_yaml" {
  description = "The broker's config.yaml (at <config_dir>/config.yaml). No secrets in it."
  value       = module.config.config_yaml
}

output "kubeconfigs" {
  description = "Cluster name => its exec-credential kubeconfig (at <config_dir>/kube/<cluster>.kubeconfig). No secrets in it: the plugin gets its credentials from the broker's environment or the machine's identity."
  value       = local.kubeconfigs
}

output "kubeconfig_paths" {
  description = "Cluster name => where config.yaml expects its kubeconfig."
  value       = local.kubeconfig_paths
}

output "files" {
  description = "Path => content of every file rendered here: config.yaml, policy.yaml (when policy_yaml is set) and the kubeconfigs. Write them with cloud-init write_files, your configuration management or local_file; the TLS key, the trust directory (attest-broker trust fetch) and any plugin secret are not in it."
  value = merge(
    { "${local.dir}/config.yaml" = module.config.config_yaml },
    var.policy_yaml == "" ? {} : { "${local.dir}/policy.yaml" = var.policy_yaml },
    { for name, p in local.kubeconfig_paths : p => local.kubeconfigs[name] },
  )
}

output "rbac_subjects" {
  description = "Cluster name => broker_subject for that cluster's cluster-rbac call: the User or Group the exec plugin logs in as."
  value       = { for name, c in var.clusters : name => { kind = c.rbac_subject.kind, name = c.rbac_subject.name, namespace = "" } }
}
