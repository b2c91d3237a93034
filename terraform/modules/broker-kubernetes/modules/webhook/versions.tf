# No providers: renders the API server's side of webhook mode only, so it applies offline
# (test/deploy/terraform-modules.test.ts applies it when terraform is installed).
terraform {
  required_version = ">= 1.6"
}
