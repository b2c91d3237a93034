output "crypto_key_id" {
  description = "Resource name of the crypto key, projects/…/locations/…/keyRings/…/cryptoKeys/… (release.kms.keyName)."
  value       = google_kms_crypto_key.disk.id
}

output "service_account_email" {
  description = "Email of the broker's Google service account."
  value       = google_service_account.broker.email
}

output "service_account_annotations" {
  description = "Annotations for the broker's Kubernetes ServiceAccount: iam.gke.io/gcp-service-account."
  value       = { "iam.gke.io/gcp-service-account" = google_service_account.broker.email }
}

output "broker_kms_config" {
  description = "The release.kms block for the broker's config.yaml: kind gcp-kms, keyName, transport grpc."
  value       = { kind = "gcp-kms", keyName = google_kms_crypto_key.disk.id, transport = "grpc" }
}
