# No providers: renders files only (the broker's config.yaml and its exec-credential
# kubeconfigs), so it applies offline; test/deploy/terraform-modules.test.ts applies it when
# terraform is installed and loads the result with the broker's own readers.
terraform {
  required_version = ">= 1.6"
}
