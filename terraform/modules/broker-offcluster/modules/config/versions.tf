# No providers: renders config.yaml only, so it applies offline (test/deploy/terraform-modules.test.ts
# applies it when terraform is installed and parses the result with the broker's own schema).
terraform {
  required_version = ">= 1.6"
}
