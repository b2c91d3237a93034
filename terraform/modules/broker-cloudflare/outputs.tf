output "script_name" {
  description = "Name of the deployed Worker."
  value       = cloudflare_workers_script.broker.script_name
}

output "broker_url" {
  description = "https:// URL the nodes use (user-data broker_url): the custom domain, else the route's host, else empty."
  value       = var.hostname != "" ? "https://${var.hostname}" : (var.route_pattern != "" ? "https://${trimprefix(split("/", var.route_pattern)[0], "*.")}" : "")
}
