terraform {
  required_version = ">= 1.6"
  required_providers {
    # aws_eks_pod_identity_association appeared in 5.31; tested offline against 5.100.0.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.31, < 7.0"
    }
  }
}
