# terraform/modules/user-data — node-pool user-data for attest-broker.
#
# templates/<platform>.yaml are byte copies of deploy/cloud-init/<platform>.yaml, kept inside the
# module so that it works from any source (an absolute path, git, a registry): Terraform copies
# such sources into .terraform/modules, where a path outside the module does not exist.
# test/deploy/terraform-modules.test.ts fails when a copy differs from deploy/cloud-init/.
# test/deploy/terraform.test.ts checks that each example value replaced below occurs exactly once
# per file, so a replacement cannot miss or hit twice.

locals {
  template = file("${path.module}/templates/${var.platform}.yaml")
  rendered = replace(
    replace(
      replace(
        replace(local.template,
        "ATTEST_CLIENT_SHA256=\n", "ATTEST_CLIENT_SHA256=${var.client_sha256}\n"),
      "ATTEST_BROKER=https://attest-broker.example.internal:8443", "ATTEST_BROKER=${var.broker_url}"),
    "ATTEST_CA_PIN=sha256:0000000000000000000000000000000000000000000000000000000000000000", "ATTEST_CA_PIN=${var.ca_pin}"),
  "ATTEST_CLUSTER=example-cluster", "ATTEST_CLUSTER=${var.cluster}")

  # The kubeadm hook: a drop-in re-states attest-join's ExecStart with --kubeadm-config-out, and
  # a oneshot unit ordered after attest-join runs kubeadm join with that file (docs/join.md).
  kubeadm_part = templatefile("${path.module}/templates/kubeadm-join.yaml.tftpl", {})

  parts = concat(
    [{ content_type = "text/cloud-config", filename = "attest-broker.yaml", merge_type = "", content = local.rendered, base64 = true }],
    var.kubeadm_join ? [{ content_type = "text/cloud-config", filename = "attest-broker-kubeadm.yaml", merge_type = "list(append)+dict(no_replace,recurse_list)+str()", content = local.kubeadm_part, base64 = false }] : [],
    [for p in var.extra_parts : { content_type = p.content_type, filename = p.filename, merge_type = p.merge_type, content = p.content, base64 = false }],
  )
  multipart = templatefile("${path.module}/templates/multipart.tftpl", { boundary = "==ATTEST-BROKER-PART==", parts = local.parts })
}
