output "config_yaml" {
  description = "The broker's config.yaml."
  value       = templatefile("${path.module}/templates/config.yaml.tftpl", { config = local.config })
}
