# terraform/modules/cluster-rbac — what release, TLS bootstrap and the approver need from the
# cluster, and nothing more. The same objects as deploy/kubernetes/base/rbac.yaml and
# deploy/kubernetes/components/kubeadm/rbac.yaml (read those for why each grant has its shape);
# test/deploy/terraform-modules.test.ts compares the rules with those files.

locals {
  # Every broker token carries this group (broker/release/token.ts DEFAULT_GROUP); policy
  # release.extraGroups may add more, which these bindings deliberately do not cover.
  token_group = "system:bootstrappers:attest-broker"
  labels      = merge({ "app.kubernetes.io/name" = "attest-broker", "app.kubernetes.io/part-of" = "attest-broker" }, var.labels)
  username    = var.broker_subject.kind == "ServiceAccount" ? "system:serviceaccount:${var.broker_subject.namespace}:${var.broker_subject.name}" : var.broker_subject.name
  secrets     = var.release_mode == "secret"
  subject     = var.broker_subject.kind == "ServiceAccount" ? { kind = "ServiceAccount", name = var.broker_subject.name, namespace = var.broker_subject.namespace, api_group = "" } : { kind = var.broker_subject.kind, name = var.broker_subject.name, namespace = "", api_group = "rbac.authorization.k8s.io" }
  # Who the admission policy applies to: the broker's username, or every member of its group.
  identity_match = var.broker_subject.kind == "Group" ? "'${var.broker_subject.name}' in request.userInfo.groups" : "request.userInfo.username == '${local.username}'"
}

# ── Bootstrap-token Secrets in kube-system (secret mode) ──
resource "kubernetes_role_v1" "bootstrap_tokens" {
  count = local.secrets ? 1 : 0
  metadata {
    name      = "attest-broker-bootstrap-tokens"
    namespace = "kube-system"
    labels    = local.labels
  }
  rule {
    api_groups = [""]
    resources  = ["secrets"]
    verbs      = ["create", "get", "delete"]
  }
}

resource "kubernetes_role_binding_v1" "bootstrap_tokens" {
  count = local.secrets ? 1 : 0
  metadata {
    name      = "attest-broker-bootstrap-tokens"
    namespace = "kube-system"
    labels    = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.bootstrap_tokens[0].metadata[0].name
  }
  subject {
    kind      = local.subject.kind
    name      = local.subject.name
    namespace = local.subject.namespace
    api_group = local.subject.api_group
  }
}

# What RBAC cannot say (create cannot be limited by name): only bootstrap-token Secrets.
resource "kubernetes_manifest" "bootstrap_tokens_only" {
  count = local.secrets && var.admission_policy ? 1 : 0
  manifest = {
    apiVersion = "admissionregistration.k8s.io/v1"
    kind       = "ValidatingAdmissionPolicy"
    metadata   = { name = "attest-broker-bootstrap-tokens-only", labels = local.labels }
    spec = {
      failurePolicy = "Fail"
      matchConstraints = {
        resourceRules     = [{ apiGroups = [""], apiVersions = ["v1"], operations = ["CREATE", "DELETE"], resources = ["secrets"] }]
        namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "kube-system" } }
      }
      matchConditions = [{ name = "broker-identity", expression = local.identity_match }]
      validations = [{
        expression = "request.operation == 'DELETE' ? (oldObject.type == 'bootstrap.kubernetes.io/token' && oldObject.metadata.name.startsWith('bootstrap-token-')) : (object.type == 'bootstrap.kubernetes.io/token' && object.metadata.name.startsWith('bootstrap-token-'))"
        message    = "attest-broker may only create or delete bootstrap token Secrets (bootstrap-token-<id>)"
      }]
    }
  }
}

resource "kubernetes_manifest" "bootstrap_tokens_only_binding" {
  count = local.secrets && var.admission_policy ? 1 : 0
  manifest = {
    apiVersion = "admissionregistration.k8s.io/v1"
    kind       = "ValidatingAdmissionPolicyBinding"
    metadata   = { name = "attest-broker-bootstrap-tokens-only", labels = local.labels }
    spec       = { policyName = "attest-broker-bootstrap-tokens-only", validationActions = ["Deny"] }
  }
  depends_on = [kubernetes_manifest.bootstrap_tokens_only]
}

# ── TLS bootstrap: token holders may create and read their CSR (system:node-bootstrapper). ──
# Deliberately not bound: …:nodeclient / …:selfnodeclient (the stock approver's roles).
resource "kubernetes_cluster_role_binding_v1" "node_bootstrapper" {
  metadata {
    name   = "attest-broker:node-bootstrapper"
    labels = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = "system:node-bootstrapper"
  }
  subject {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Group"
    name      = local.token_group
  }
}

# ── The CSR approver ──
resource "kubernetes_cluster_role_v1" "csr_approver" {
  count = var.approver ? 1 : 0
  metadata {
    name   = "attest-broker:csr-approver"
    labels = local.labels
  }
  rule {
    api_groups = ["certificates.k8s.io"]
    resources  = ["certificatesigningrequests"]
    verbs      = ["get", "list", "watch"]
  }
  rule {
    api_groups = ["certificates.k8s.io"]
    resources  = ["certificatesigningrequests/approval"]
    verbs      = ["update"]
  }
  rule {
    api_groups     = ["certificates.k8s.io"]
    resources      = ["signers"]
    resource_names = ["kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"]
    verbs          = ["approve"]
  }
}

resource "kubernetes_cluster_role_binding_v1" "csr_approver" {
  count = var.approver ? 1 : 0
  metadata {
    name   = "attest-broker:csr-approver"
    labels = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = kubernetes_cluster_role_v1.csr_approver[0].metadata[0].name
  }
  subject {
    kind      = local.subject.kind
    name      = local.subject.name
    namespace = local.subject.namespace
    api_group = local.subject.api_group
  }
}

resource "kubernetes_role_v1" "approver_lease" {
  count = var.approver ? 1 : 0
  metadata {
    name      = "attest-broker-approver-lease"
    namespace = var.approver_namespace
    labels    = local.labels
  }
  rule {
    api_groups = ["coordination.k8s.io"]
    resources  = ["leases"]
    verbs      = ["create"]
  }
  rule {
    api_groups     = ["coordination.k8s.io"]
    resources      = ["leases"]
    resource_names = ["attest-broker-approver"]
    verbs          = ["get", "update"]
  }
}

resource "kubernetes_role_binding_v1" "approver_lease" {
  count = var.approver ? 1 : 0
  metadata {
    name      = "attest-broker-approver-lease"
    namespace = var.approver_namespace
    labels    = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.approver_lease[0].metadata[0].name
  }
  subject {
    kind      = local.subject.kind
    name      = local.subject.name
    namespace = local.subject.namespace
    api_group = local.subject.api_group
  }
}

# ── kubeadm join: the reads kubeadm grants its own token group, for the broker's group. ──
resource "kubernetes_role_binding_v1" "kubeadm_config" {
  for_each = var.kubeadm ? { "attest-broker:kubeadm-config" = "kubeadm:nodes-kubeadm-config", "attest-broker:kubelet-config" = "kubeadm:kubelet-config" } : {}
  metadata {
    name      = each.key
    namespace = "kube-system"
    labels    = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = each.value
  }
  subject {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Group"
    name      = local.token_group
  }
}

resource "kubernetes_cluster_role_binding_v1" "kubeadm_get_nodes" {
  count = var.kubeadm ? 1 : 0
  metadata {
    name   = "attest-broker:get-nodes"
    labels = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = "kubeadm:get-nodes"
  }
  subject {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Group"
    name      = local.token_group
  }
}
