# terraform/modules/iam-gcp — the disk-key Cloud KMS key and the broker's GKE Workload Identity.
# The broker wraps and unwraps with additionalAuthenticatedData = the disk-key context
# (providers/gcp/kms.ts), so it needs encrypt and decrypt on this one key, nothing on the ring.

locals {
  workload_pool = var.workload_pool != "" ? var.workload_pool : "${var.project_id}.svc.id.goog"
}

resource "google_kms_key_ring" "broker" {
  project  = var.project_id
  name     = var.name
  location = var.location
}

resource "google_kms_crypto_key" "disk" {
  name            = "${var.name}-disk-keys"
  key_ring        = google_kms_key_ring.broker.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.rotation_period
  labels          = var.labels

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.protection_level
  }

  # Destroying the key makes every wrapped disk key undecryptable.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_service_account" "broker" {
  project      = var.project_id
  account_id   = "${var.name}-broker"
  display_name = "attest-broker (${var.namespace}/${var.service_account})"
  description  = "Wraps and unwraps disk keys with ${google_kms_crypto_key.disk.name}"
}

resource "google_kms_crypto_key_iam_member" "broker" {
  crypto_key_id = google_kms_crypto_key.disk.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${google_service_account.broker.email}"
}

# GKE Workload Identity: the KSA may act as the GSA.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.broker.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.namespace}/${var.service_account}]"
}
