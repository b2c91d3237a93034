variable "broker_subject" {
  description = "Who the broker authenticates as to this cluster: its ServiceAccount (in-cluster, the default attest-broker/attest-broker) or, for a broker outside the cluster, the User or Group its exec-credential kubeconfig logs in as (broker-offcluster's rbac_subjects output: EKS access-entry username or group, the GKE service account's email, the Entra object ID on AKS, or an Entra group's object ID)."
  type = object({
    kind      = string
    name      = string
    namespace = optional(string, "")
  })
  default = { kind = "ServiceAccount", name = "attest-broker", namespace = "attest-broker" }
  validation {
    condition     = contains(["ServiceAccount", "User", "Group"], var.broker_subject.kind)
    error_message = "broker_subject.kind must be ServiceAccount, User or Group."
  }
  validation {
    condition     = var.broker_subject.kind != "ServiceAccount" || (can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.broker_subject.namespace)) && can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.broker_subject.name)))
    error_message = "A ServiceAccount subject needs a DNS-1123 name and namespace."
  }
  validation {
    condition     = length(var.broker_subject.name) > 0 && length(var.broker_subject.name) <= 253 && !can(regex("['\\\\\\s]", var.broker_subject.name))
    error_message = "broker_subject.name must be 1-253 characters without quotes, backslashes or spaces (it is quoted into the admission policy's CEL expression)."
  }
}

variable "release_mode" {
  description = "The broker's release.mode: secret (bootstrap-token Secrets in kube-system: a Role for create/get/delete and, with admission_policy, a ValidatingAdmissionPolicy) or webhook (no Secrets, so no Role)."
  type        = string
  default     = "secret"
  validation {
    condition     = contains(["secret", "webhook"], var.release_mode)
    error_message = "release_mode must be secret or webhook."
  }
}

variable "admission_policy" {
  description = "secret mode: also create the ValidatingAdmissionPolicy (+ binding) that limits the broker's create/delete to bootstrap-token Secrets (Kubernetes >= 1.30). Uses kubernetes_manifest, which needs the API server reachable at plan time."
  type        = bool
  default     = true
}

variable "approver" {
  description = "Grant the CSR approver (release.approver.enabled): watch CSRs, update their approval, approve for the two kubelet signers, and the leader-election Lease in the broker's namespace."
  type        = bool
  default     = true
}

variable "approver_namespace" {
  description = "Namespace of the approver's leader-election Lease (attest-broker-approver). Must exist: pass broker-kubernetes' namespace output. Ignored without approver."
  type        = string
  default     = "attest-broker"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.approver_namespace))
    error_message = "approver_namespace must be a DNS-1123 label."
  }
}

variable "kubeadm" {
  description = "Nodes join with kubeadm join --config (docs/join.md): bind the token group to the Roles and ClusterRole kubeadm init created (kubeadm:nodes-kubeadm-config, kubeadm:kubelet-config, kubeadm:get-nodes). Never to kubeadm's auto-approval role."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Extra labels for every object."
  type        = map(string)
  default     = {}
}
