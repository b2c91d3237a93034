# No providers: the module only reads its own templates and renders text, so `terraform init`
# downloads nothing and it applies offline (test/deploy/terraform.test.ts does).
terraform {
  required_version = ">= 1.6"
}
