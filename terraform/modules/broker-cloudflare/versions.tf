terraform {
  required_version = ">= 1.6"
  required_providers {
    # v5: cloudflare_workers_script with bindings/migrations attributes and content_file +
    # content_sha256 (5.8 and later); v4's schema differs entirely.
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.8, < 6.0"
    }
  }
}
