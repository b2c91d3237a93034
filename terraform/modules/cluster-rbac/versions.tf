terraform {
  required_version = ">= 1.6"
  required_providers {
    # The *_v1 resources and kubernetes_manifest exist in 2.x and 3.x.
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.25, < 4.0"
    }
  }
}
