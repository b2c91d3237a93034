output "config_yaml" {
  description = "The broker's config.yaml."
  value       = templatefile("${path.module}/templates/config.yaml.tftpl", { config = local.config })
  # Checks across variables (a variable's validation may name only itself before Terraform 1.9).
  precondition {
    condition     = var.release_mode != "webhook" || var.token_review != null
    error_message = "release_mode = webhook needs token_review (the broker refuses a webhook without callers)."
  }
  precondition {
    condition     = var.token_review == null || length(setsubtract(keys(try(var.token_review.callers, {})), keys(var.clusters))) == 0
    error_message = "token_review.callers names a cluster that is not in clusters."
  }
  precondition {
    condition     = length(var.kubeconfigs) == 0 || (length(setsubtract(keys(var.clusters), keys(var.kubeconfigs))) == 0 && length(setsubtract(keys(var.kubeconfigs), keys(var.clusters))) == 0)
    error_message = "kubeconfigs must be empty (in-cluster) or name exactly the clusters of clusters."
  }
}

output "config" {
  description = "The same configuration as an object (what config_yaml encodes), for callers that need its paths."
  value       = local.config
}
