terraform {
  required_version = ">= 1.6"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = ">= 5.8, < 6.0"
    }
  }
}

# The API token comes from CLOUDFLARE_API_TOKEN (Workers Scripts: Edit, Workers Routes: Edit).
provider "cloudflare" {}
