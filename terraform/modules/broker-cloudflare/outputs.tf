output "script_name" {
  description = "Name of the deployed Worker."
  value       = cloudflare_workers_script.broker.script_name
}

output "broker_url" {
  description = "https:// URL the nodes use (user-data broker_url): the custom domain, else the route's host, else empty."
  value       = local.broker_url
}
