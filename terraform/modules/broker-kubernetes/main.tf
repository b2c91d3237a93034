# terraform/modules/broker-kubernetes — attest-broker (with its CSR approver) on a cluster, the
# objects of deploy/kubernetes/base (and overlays/redis) through the kubernetes provider.
# Differences from the kustomize base, on purpose:
# - the broker can serve TLS itself (tls_* variables) instead of behind an Ingress, so nodes can
#   reach it through an internal load balancer before an ingress controller runs on any worker;
# - run_on_control_plane tolerates the control-plane taint and selects control-plane nodes;
# - the ServiceAccount carries the iam-* module's workload-identity annotations.
# RBAC (bootstrap-token Secrets, TLS bootstrap, approver, admission policy) is cluster-rbac's.

locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.broker[0].metadata[0].name : var.namespace
  tls       = var.tls_cert_chain_pem != ""
  port      = local.tls ? 8443 : 8080
  port_name = local.tls ? "https" : "http"
  selector  = { "app.kubernetes.io/name" = "attest-broker", "app.kubernetes.io/component" = "broker" }
  labels    = merge(local.selector, { "app.kubernetes.io/part-of" = "attest-broker" })
  redis_sel = { "app.kubernetes.io/name" = "attest-broker", "app.kubernetes.io/component" = "redis" }
  tolerations = concat(
    var.run_on_control_plane ? [{ key = "node-role.kubernetes.io/control-plane", operator = "Exists", value = null, effect = "NoSchedule" }] : [],
    var.tolerations,
  )
  node_selector = merge(var.run_on_control_plane ? { "node-role.kubernetes.io/control-plane" = "" } : {}, var.node_selector)
  policy_yaml   = var.policy_yaml
  config_yaml   = module.config.config_yaml
  # webhook mode: the TokenReview listener on a port and Service of its own (never the join
  # Service), serving webhook_tls_* or else the broker's own certificate.
  webhook       = var.release_mode == "webhook"
  webhook_port  = 8444
  webhook_chain = var.webhook_tls_cert_chain_pem != "" ? var.webhook_tls_cert_chain_pem : var.tls_cert_chain_pem
  webhook_key   = var.webhook_tls_cert_chain_pem != "" ? var.webhook_tls_private_key_pem : var.tls_private_key_pem
  webhook_mtls  = var.webhook_client_ca_pem != ""
}

module "webhook" {
  count               = local.webhook ? 1 : 0
  source              = "./modules/webhook"
  clusters            = keys(var.clusters)
  server              = var.webhook_server
  serving_chain_pem   = local.webhook_chain
  bearer_tokens       = var.webhook_bearer_tokens
  client_common_names = var.webhook_client_common_names
  apiserver_dir       = var.webhook_apiserver_dir
}

module "config" {
  source            = "./modules/config"
  port              = local.port
  tls               = local.tls
  trusted_proxies   = var.trusted_proxies
  providers_enabled = var.providers_enabled
  store_url         = var.redis_enabled ? "redis://attest-broker-redis:6379/0" : "memory://"
  clusters          = var.clusters
  approver          = var.approver
  kms               = var.kms
  log_level         = var.log_level
  release_mode      = var.release_mode
  token_review      = local.webhook ? { port = local.webhook_port, client_ca = local.webhook_mtls, callers = module.webhook[0].callers, max_reviews_per_token = 16 } : null
}

resource "kubernetes_namespace_v1" "broker" {
  count = var.create_namespace ? 1 : 0
  metadata {
    name = var.namespace
    labels = {
      # Pod Security Admission: the broker meets the restricted profile.
      "pod-security.kubernetes.io/enforce"         = "restricted"
      "pod-security.kubernetes.io/enforce-version" = "latest"
    }
  }
}

resource "kubernetes_service_account_v1" "broker" {
  metadata {
    name        = "attest-broker"
    namespace   = local.namespace
    labels      = local.labels
    annotations = var.service_account_annotations
  }
  # The token is needed to create bootstrap-token Secrets and approve CSRs through the API.
  automount_service_account_token = true
}

resource "kubernetes_config_map_v1" "broker" {
  metadata {
    name      = "attest-broker-config"
    namespace = local.namespace
    labels    = local.labels
  }
  data = {
    "config.yaml" = local.config_yaml
    "policy.yaml" = local.policy_yaml
  }
}

resource "kubernetes_secret_v1" "tls" {
  count = local.tls ? 1 : 0
  metadata {
    name      = "attest-broker-tls"
    namespace = local.namespace
    labels    = local.labels
  }
  type = "kubernetes.io/tls"
  data = {
    "tls.crt" = var.tls_cert_chain_pem
    "tls.key" = var.tls_private_key_pem
  }
}

# webhook mode: the TokenReview listener's certificate (and the CA of the API servers' client
# certificates, for mutual TLS), mounted at /etc/attest-broker/webhook.
resource "kubernetes_secret_v1" "webhook_tls" {
  count = local.webhook ? 1 : 0
  metadata {
    name      = "attest-broker-webhook-tls"
    namespace = local.namespace
    labels    = local.labels
  }
  type = "kubernetes.io/tls"
  data = merge(
    { "tls.crt" = local.webhook_chain, "tls.key" = local.webhook_key },
    local.webhook_mtls ? { "client-ca.crt" = var.webhook_client_ca_pem } : {},
  )
}

resource "kubernetes_secret_v1" "redis" {
  count = var.redis_enabled ? 1 : 0
  metadata {
    name      = "attest-broker-redis"
    namespace = local.namespace
    labels    = local.labels
  }
  data = { password = var.redis_password }
}

resource "kubernetes_deployment_v1" "broker" {
  metadata {
    name      = "attest-broker"
    namespace = local.namespace
    labels    = local.labels
  }

  spec {
    replicas               = var.replicas
    revision_history_limit = 3
    selector {
      match_labels = local.selector
    }
    strategy {
      # One replica with the memory store: never two processes at once.
      type = var.redis_enabled ? "RollingUpdate" : "Recreate"
      dynamic "rolling_update" {
        for_each = var.redis_enabled ? [1] : []
        content {
          max_unavailable = "1"
          max_surge       = "1"
        }
      }
    }

    template {
      metadata {
        labels = merge(local.labels, var.pod_labels)
        annotations = {
          # A config or policy change rolls the pods (policy also reloads on its own: watch).
          "attest-broker/config-sha256" = sha256("${local.config_yaml}\n${local.policy_yaml}")
        }
      }

      spec {
        service_account_name            = kubernetes_service_account_v1.broker.metadata[0].name
        automount_service_account_token = true
        enable_service_links            = false
        node_selector                   = local.node_selector

        security_context {
          run_as_non_root = true
          run_as_user     = 65532
          run_as_group    = 65532
          fs_group        = 65532
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        dynamic "toleration" {
          for_each = local.tolerations
          content {
            key      = toleration.value.key
            operator = toleration.value.operator
            value    = toleration.value.value
            effect   = toleration.value.effect
          }
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "topology.kubernetes.io/zone"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = local.selector
          }
        }

        # The pinned vendor roots, downloaded and checked against the pins compiled into the broker.
        init_container {
          name              = "trust-fetch"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          args              = ["trust", "fetch", "--dir", "/var/lib/attest-broker/trust"]
          resources {
            requests = { cpu = "50m", memory = "64Mi" }
            limits   = { memory = "128Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "trust"
            mount_path = "/var/lib/attest-broker/trust"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        container {
          name              = "broker"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          args              = ["serve", "--config", "/etc/attest-broker/config.yaml"]

          port {
            name           = local.port_name
            container_port = local.port
            protocol       = "TCP"
          }
          dynamic "port" {
            for_each = local.webhook ? [1] : []
            content {
              name           = "webhook"
              container_port = local.webhook_port
              protocol       = "TCP"
            }
          }

          env {
            name  = "NODE_ENV"
            value = "production"
          }
          env {
            name  = "NODE_OPTIONS"
            value = "--max-old-space-size=384"
          }
          dynamic "env" {
            for_each = var.redis_enabled ? [1] : []
            content {
              name = "REDIS_PASSWORD"
              value_from {
                secret_key_ref {
                  name = kubernetes_secret_v1.redis[0].metadata[0].name
                  key  = "password"
                }
              }
            }
          }
          dynamic "env" {
            for_each = var.redis_enabled ? [1] : []
            content {
              # Kubernetes expands $(VAR) from variables defined before it in the list.
              name  = "ATTEST_BROKER_STORE_URL"
              value = "redis://:$(REDIS_PASSWORD)@attest-broker-redis:6379/0"
            }
          }

          startup_probe {
            http_get {
              path   = "/healthz"
              port   = local.port_name
              scheme = upper(local.port_name)
            }
            period_seconds    = 2
            failure_threshold = 30
          }
          liveness_probe {
            http_get {
              path   = "/healthz"
              port   = local.port_name
              scheme = upper(local.port_name)
            }
            period_seconds    = 10
            timeout_seconds   = 3
            failure_threshold = 3
          }
          # Ready only when the store is reachable and the trust roots are loaded.
          readiness_probe {
            http_get {
              path   = "/readyz"
              port   = local.port_name
              scheme = upper(local.port_name)
            }
            period_seconds    = 5
            timeout_seconds   = 3
            failure_threshold = 2
          }

          resources {
            requests = { cpu = "250m", memory = "256Mi" }
            limits   = { memory = "512Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "config"
            mount_path = "/etc/attest-broker"
            read_only  = true
          }
          dynamic "volume_mount" {
            for_each = local.tls ? [1] : []
            content {
              name       = "tls"
              mount_path = "/etc/attest-broker/tls"
              read_only  = true
            }
          }
          dynamic "volume_mount" {
            for_each = local.webhook ? [1] : []
            content {
              name       = "webhook-tls"
              mount_path = "/etc/attest-broker/webhook"
              read_only  = true
            }
          }
          volume_mount {
            name       = "trust"
            mount_path = "/var/lib/attest-broker/trust"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "config"
          config_map {
            name = kubernetes_config_map_v1.broker.metadata[0].name
          }
        }
        dynamic "volume" {
          for_each = local.tls ? [1] : []
          content {
            name = "tls"
            secret {
              secret_name = kubernetes_secret_v1.tls[0].metadata[0].name
            }
          }
        }
        dynamic "volume" {
          for_each = local.webhook ? [1] : []
          content {
            name = "webhook-tls"
            secret {
              secret_name = kubernetes_secret_v1.webhook_tls[0].metadata[0].name
            }
          }
        }
        volume {
          name = "trust"
          empty_dir {
            size_limit = "8Mi"
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            medium     = "Memory"
            size_limit = "16Mi"
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.replicas == 1 || var.redis_enabled
      error_message = "replicas > 1 needs redis_enabled: the memory store is per process."
    }
    precondition {
      condition     = !var.redis_enabled || nonsensitive(var.redis_password != "")
      error_message = "redis_enabled needs redis_password."
    }
    precondition {
      condition     = (var.tls_cert_chain_pem == "") == nonsensitive(var.tls_private_key_pem == "")
      error_message = "tls_cert_chain_pem and tls_private_key_pem go together."
    }
    precondition {
      condition     = !local.webhook || (local.webhook_chain != "" && nonsensitive(local.webhook_key != ""))
      error_message = "release_mode = webhook needs a serving certificate for the TokenReview listener: webhook_tls_cert_chain_pem and webhook_tls_private_key_pem, or tls_cert_chain_pem and tls_private_key_pem."
    }
    precondition {
      condition     = (var.webhook_tls_cert_chain_pem == "") == nonsensitive(var.webhook_tls_private_key_pem == "")
      error_message = "webhook_tls_cert_chain_pem and webhook_tls_private_key_pem go together."
    }
    precondition {
      condition     = length(var.webhook_client_common_names) == 0 || local.webhook_mtls
      error_message = "webhook_client_common_names needs webhook_client_ca_pem (the CA the broker verifies the API servers' client certificates with)."
    }
  }
}

resource "kubernetes_service_v1" "broker" {
  metadata {
    name        = "attest-broker"
    namespace   = local.namespace
    labels      = local.labels
    annotations = var.service_annotations
  }
  spec {
    type     = var.service_type
    selector = local.selector
    port {
      name        = local.port_name
      port        = local.tls ? 443 : 80
      target_port = local.port_name
      protocol    = "TCP"
    }
  }
}

# webhook mode: only the TokenReview port, for the API servers (never exposed with the join
# endpoints). A fixed webhook_cluster_ip lets webhook_server and the certificate name it up front.
resource "kubernetes_service_v1" "webhook" {
  count = local.webhook ? 1 : 0
  metadata {
    name        = "attest-broker-webhook"
    namespace   = local.namespace
    labels      = local.labels
    annotations = var.webhook_service_annotations
  }
  spec {
    type       = var.webhook_service_type
    cluster_ip = var.webhook_cluster_ip != "" ? var.webhook_cluster_ip : null
    selector   = local.selector
    port {
      name        = "webhook"
      port        = local.webhook_port
      target_port = "webhook"
      protocol    = "TCP"
    }
  }
}

# Voluntary disruptions take at most one broker pod at a time.
resource "kubernetes_pod_disruption_budget_v1" "broker" {
  metadata {
    name      = "attest-broker"
    namespace = local.namespace
    labels    = local.labels
  }
  spec {
    max_unavailable = "1"
    selector {
      match_labels = local.selector
    }
  }
}

# ── Optional in-cluster Redis (no persistence: challenges live 120 s) ──
resource "kubernetes_deployment_v1" "redis" {
  count = var.redis_enabled ? 1 : 0
  metadata {
    name      = "attest-broker-redis"
    namespace = local.namespace
    labels    = local.redis_sel
  }
  spec {
    replicas = 1
    selector {
      match_labels = local.redis_sel
    }
    template {
      metadata {
        labels = local.redis_sel
      }
      spec {
        automount_service_account_token = false
        enable_service_links            = false
        node_selector                   = local.node_selector
        dynamic "toleration" {
          for_each = local.tolerations
          content {
            key      = toleration.value.key
            operator = toleration.value.operator
            value    = toleration.value.value
            effect   = toleration.value.effect
          }
        }
        security_context {
          run_as_non_root = true
          run_as_user     = 999
          run_as_group    = 999
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name    = "redis"
          image   = var.redis_image
          command = ["sh", "-c", "exec redis-server --save '' --appendonly no --protected-mode yes --requirepass \"$REDIS_PASSWORD\""]
          env {
            name = "REDIS_PASSWORD"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.redis[0].metadata[0].name
                key  = "password"
              }
            }
          }
          port {
            name           = "redis"
            container_port = 6379
          }
          readiness_probe {
            tcp_socket {
              port = "redis"
            }
            period_seconds = 5
          }
          liveness_probe {
            tcp_socket {
              port = "redis"
            }
            period_seconds = 10
          }
          resources {
            requests = { cpu = "100m", memory = "128Mi" }
            limits   = { memory = "256Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "data"
            mount_path = "/data"
          }
        }
        volume {
          name = "data"
          empty_dir {}
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "redis" {
  count = var.redis_enabled ? 1 : 0
  metadata {
    name      = "attest-broker-redis"
    namespace = local.namespace
    labels    = local.redis_sel
  }
  spec {
    selector = local.redis_sel
    port {
      name        = "redis"
      port        = 6379
      target_port = "redis"
    }
  }
}

# Only broker pods may talk to Redis.
resource "kubernetes_network_policy_v1" "redis" {
  count = var.redis_enabled ? 1 : 0
  metadata {
    name      = "attest-broker-redis"
    namespace = local.namespace
    labels    = local.redis_sel
  }
  spec {
    pod_selector {
      match_labels = local.redis_sel
    }
    policy_types = ["Ingress"]
    ingress {
      from {
        pod_selector {
          match_labels = local.selector
        }
      }
      ports {
        port     = "6379"
        protocol = "TCP"
      }
    }
  }
}
