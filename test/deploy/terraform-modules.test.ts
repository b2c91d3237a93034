/**
 * terraform/: the per-cluster modules and the examples that compose them.
 *
 * Two layers, because CI has no `terraform` (it is not a Debian package) and no machine here can
 * download providers:
 * - static checks that always run: every .tf file parsed with an HCL parser (@cdktf/hcl2json,
 *   HashiCorp's HCL compiled to WebAssembly); Terraform >= 1.6 everywhere; every provider a
 *   module uses is constrained in required_providers; every variable has a description and a
 *   type, and a validation unless it is a bool or listed below as free-form; every output has a
 *   description; every var./local./module. reference resolves; every module call passes only
 *   variables the module declares and sets every required one; every output of the iam modules
 *   is consumed by an example; resource types and their arguments are checked against a table of
 *   the provider schemas (registry.terraform.io pages cited per entry); the RBAC mirrors
 *   deploy/kubernetes, the Worker's bindings mirror broker/worker.ts and wrangler.toml, and the
 *   user-data templates are byte copies of deploy/cloud-init;
 * - with `terraform` installed (opt-in, "(needs terraform)"): `terraform fmt -check -recursive`,
 *   `init -backend=false` + `validate` for every module that needs no external provider, and
 *   offline applies of those modules whose output the broker's own parsers then check (the
 *   broker-kubernetes config and webhook submodules, broker-offcluster, user-data).
 *
 * What could not be done here is listed in NOT_PLANNED and printed: of the modules that need a
 * provider only iam-aws was validated and planned (against a locally mirrored AWS provider, when
 * one exists, with dummy credentials); the others and every example were neither.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parse as parseHcl } from '@cdktf/hcl2json';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../broker/config/schema.js';
import { buildReleaseRuntime, ReleaseConfigSchema } from '../../broker/release/runtime.node.js';
import { kubeconfigAccess } from '../../broker/release/kube.node.js';
import { parseExecConfig } from '../../broker/release/kube-exec.node.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { captureLogger, claimsFor, decisionFor, memoryStore } from '../release/helpers.js';
import { checkPolicyText } from '../../broker/policy/index.js';
import { makeTestPki } from '../servers/tls.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TF = join(ROOT, 'terraform');

// ── What could not be done without the providers (printed, and kept complete by a test) ──
const NOT_PLANNED: Readonly<Record<string, string>> = {
  'modules/iam-aws': 'validated and planned only where a local mirror of hashicorp/aws exists (opt-in; dummy credentials, no API call); never applied; the key policy names the role ARN, unknown at plan time',
  'modules/iam-gcp': 'hashicorp/google cannot be downloaded here: neither validated nor planned; arguments checked against the schema table only',
  'modules/iam-azure': 'hashicorp/azurerm cannot be downloaded here: neither validated nor planned; arguments checked against the schema table only',
  'modules/broker-kubernetes': 'hashicorp/kubernetes cannot be downloaded here: neither validated nor planned (webhook mode included: its Secret, Service, port and volume are checked statically only); its config and webhook submodules are applied offline and their output used by the broker',
  'modules/cluster-rbac': 'hashicorp/kubernetes cannot be downloaded here: neither validated nor planned; rules compared with deploy/kubernetes; the User/Group subject and the webhook-mode omission of the Secret Role checked statically only',
  'modules/broker-cloudflare': 'cloudflare/cloudflare cannot be downloaded here: neither validated nor planned; bindings compared with broker/worker.ts and wrangler.toml',
  'examples/aws': 'needs hashicorp/aws and hashicorp/kubernetes: not validated or planned',
  'examples/gcp': 'needs hashicorp/google and hashicorp/kubernetes: not validated or planned',
  'examples/azure': 'needs hashicorp/azurerm and hashicorp/kubernetes: not validated or planned',
  'examples/cloudflare': 'needs cloudflare/cloudflare: not validated or planned',
};

const MODULES = [
  'iam-aws',
  'iam-gcp',
  'iam-azure',
  'broker-kubernetes',
  'broker-kubernetes/modules/config',
  'broker-kubernetes/modules/webhook',
  'broker-offcluster',
  'broker-offcluster/modules/config',
  'broker-cloudflare',
  'cluster-rbac',
  'user-data',
].map((m) => `modules/${m}`);
const EXAMPLES = ['aws', 'gcp', 'azure', 'cloudflare'].map((e) => `examples/${e}`);
const PROVIDER_FREE = ['modules/user-data', 'modules/broker-kubernetes/modules/config', 'modules/broker-kubernetes/modules/webhook', 'modules/broker-offcluster', 'modules/broker-offcluster/modules/config'];

/**
 * Variables whose values have no format to validate: free-form maps of labels/tags/annotations
 * (Kubernetes and the clouds check their keys) and booleans (listed by type, not here).
 */
const FREE_FORM: Readonly<Record<string, string>> = {
  'modules/iam-aws:tags': 'AWS checks tag keys/values',
  'modules/iam-gcp:labels': 'Google checks label keys/values',
  'modules/iam-azure:tags': 'Azure checks tag keys/values',
  'modules/cluster-rbac:labels': 'Kubernetes checks label keys/values',
  'modules/broker-kubernetes:service_annotations': 'annotations are free-form',
  'modules/broker-kubernetes:service_account_annotations': 'annotations are free-form (an iam module output)',
  'modules/broker-kubernetes:pod_labels': 'Kubernetes checks label keys/values (an iam module output)',
  'modules/broker-kubernetes:node_selector': 'Kubernetes checks label keys/values',
  'modules/broker-kubernetes:webhook_service_annotations': 'annotations are free-form',
};

// ── The provider schema table ──
// Top-level arguments (and nested blocks where listed) each resource type accepts, and the
// ones it requires, from the provider documentation cited with each entry. Computed-only
// attributes are left out. `meta` arguments (count, for_each, lifecycle, depends_on, provider)
// are allowed everywhere.
interface SchemaEntry {
  doc: string;
  args: readonly string[];
  required?: readonly string[];
  nested?: Readonly<Record<string, readonly string[]>>;
}
const REG = 'https://registry.terraform.io/providers';
const K8S_META = ['name', 'namespace', 'labels', 'annotations', 'generate_name'];
const K8S_RULE = ['api_groups', 'resources', 'verbs', 'resource_names', 'non_resource_urls'];
const K8S_ROLE_REF = ['api_group', 'kind', 'name'];
const K8S_SUBJECT = ['kind', 'name', 'namespace', 'api_group'];
const SCHEMA: Readonly<Record<string, SchemaEntry>> = {
  // hashicorp/aws
  aws_kms_key: {
    doc: `${REG}/hashicorp/aws/latest/docs/resources/kms_key`,
    args: ['description', 'key_usage', 'customer_master_key_spec', 'custom_key_store_id', 'xks_key_id', 'policy', 'bypass_policy_lockout_safety_check', 'deletion_window_in_days', 'is_enabled', 'enable_key_rotation', 'rotation_period_in_days', 'multi_region', 'tags'],
  },
  aws_kms_alias: { doc: `${REG}/hashicorp/aws/latest/docs/resources/kms_alias`, args: ['name', 'name_prefix', 'target_key_id'], required: ['target_key_id'] },
  aws_iam_role: {
    doc: `${REG}/hashicorp/aws/latest/docs/resources/iam_role`,
    args: ['assume_role_policy', 'description', 'force_detach_policies', 'max_session_duration', 'name', 'name_prefix', 'path', 'permissions_boundary', 'tags', 'inline_policy', 'managed_policy_arns'],
    required: ['assume_role_policy'],
  },
  aws_eks_pod_identity_association: {
    doc: `${REG}/hashicorp/aws/latest/docs/resources/eks_pod_identity_association`,
    args: ['cluster_name', 'namespace', 'role_arn', 'service_account', 'tags'],
    required: ['cluster_name', 'namespace', 'role_arn', 'service_account'],
  },
  aws_launch_template: {
    doc: `${REG}/hashicorp/aws/latest/docs/resources/launch_template`,
    args: ['name', 'name_prefix', 'description', 'image_id', 'instance_type', 'user_data', 'metadata_options', 'iam_instance_profile', 'vpc_security_group_ids', 'block_device_mappings', 'network_interfaces', 'tag_specifications', 'update_default_version', 'tags', 'key_name'],
    nested: { metadata_options: ['http_endpoint', 'http_tokens', 'http_put_response_hop_limit', 'http_protocol_ipv6', 'instance_metadata_tags'] },
  },
  'data.aws_iam_policy_document': {
    doc: `${REG}/hashicorp/aws/latest/docs/data-sources/iam_policy_document`,
    args: ['statement', 'override_policy_documents', 'source_policy_documents', 'policy_id', 'version'],
    nested: {
      statement: ['sid', 'effect', 'actions', 'not_actions', 'resources', 'not_resources', 'principals', 'not_principals', 'condition'],
      'statement.principals': ['type', 'identifiers'],
      'statement.condition': ['test', 'variable', 'values'],
    },
  },
  // hashicorp/google
  google_kms_key_ring: { doc: `${REG}/hashicorp/google/latest/docs/resources/kms_key_ring`, args: ['name', 'location', 'project'], required: ['name', 'location'] },
  google_kms_crypto_key: {
    doc: `${REG}/hashicorp/google/latest/docs/resources/kms_crypto_key`,
    args: ['name', 'key_ring', 'labels', 'purpose', 'rotation_period', 'version_template', 'destroy_scheduled_duration', 'import_only', 'skip_initial_version_creation', 'crypto_key_backend', 'key_access_justifications_policy'],
    required: ['name', 'key_ring'],
    nested: { version_template: ['algorithm', 'protection_level'] },
  },
  google_service_account: {
    doc: `${REG}/hashicorp/google/latest/docs/resources/google_service_account`,
    args: ['account_id', 'display_name', 'description', 'disabled', 'project', 'create_ignore_already_exists'],
    required: ['account_id'],
  },
  google_kms_crypto_key_iam_member: { doc: `${REG}/hashicorp/google/latest/docs/resources/kms_crypto_key_iam#google_kms_crypto_key_iam_member`, args: ['crypto_key_id', 'role', 'member', 'condition'], required: ['crypto_key_id', 'role', 'member'] },
  google_service_account_iam_member: {
    doc: `${REG}/hashicorp/google/latest/docs/resources/google_service_account_iam#google_service_account_iam_member`,
    args: ['service_account_id', 'role', 'member', 'condition'],
    required: ['service_account_id', 'role', 'member'],
  },
  google_compute_instance_template: {
    doc: `${REG}/hashicorp/google/latest/docs/resources/compute_instance_template`,
    args: ['name', 'name_prefix', 'project', 'region', 'machine_type', 'disk', 'network_interface', 'shielded_instance_config', 'confidential_instance_config', 'metadata', 'metadata_startup_script', 'service_account', 'labels', 'tags', 'scheduling', 'description'],
    required: ['machine_type', 'disk'],
    nested: {
      disk: ['source_image', 'boot', 'auto_delete', 'disk_size_gb', 'disk_type', 'disk_encryption_key', 'device_name', 'interface', 'mode', 'type'],
      network_interface: ['network', 'subnetwork', 'subnetwork_project', 'network_ip', 'access_config', 'stack_type'],
      shielded_instance_config: ['enable_secure_boot', 'enable_vtpm', 'enable_integrity_monitoring'],
    },
  },
  'data.google_client_config': { doc: `${REG}/hashicorp/google/latest/docs/data-sources/client_config`, args: [] },
  'data.google_container_cluster': { doc: `${REG}/hashicorp/google/latest/docs/data-sources/container_cluster`, args: ['name', 'location', 'project'], required: ['name'] },
  // hashicorp/azurerm
  azurerm_user_assigned_identity: { doc: `${REG}/hashicorp/azurerm/latest/docs/resources/user_assigned_identity`, args: ['name', 'resource_group_name', 'location', 'tags', 'isolation_scope'], required: ['name', 'resource_group_name', 'location'] },
  azurerm_federated_identity_credential: {
    doc: `${REG}/hashicorp/azurerm/latest/docs/resources/federated_identity_credential`,
    args: ['name', 'resource_group_name', 'parent_id', 'audience', 'issuer', 'subject'],
    required: ['name', 'parent_id', 'audience', 'issuer', 'subject'],
  },
  azurerm_key_vault_key: {
    doc: `${REG}/hashicorp/azurerm/latest/docs/resources/key_vault_key`,
    args: ['name', 'key_vault_id', 'key_type', 'key_size', 'curve', 'key_opts', 'not_before_date', 'expiration_date', 'rotation_policy', 'tags'],
    required: ['name', 'key_vault_id', 'key_type', 'key_opts'],
  },
  azurerm_role_assignment: {
    doc: `${REG}/hashicorp/azurerm/latest/docs/resources/role_assignment`,
    args: ['name', 'scope', 'role_definition_id', 'role_definition_name', 'principal_id', 'principal_type', 'condition', 'condition_version', 'delegated_managed_identity_resource_id', 'description', 'skip_service_principal_aad_check'],
    required: ['scope', 'principal_id'],
  },
  'data.azurerm_kubernetes_cluster': { doc: `${REG}/hashicorp/azurerm/latest/docs/data-sources/kubernetes_cluster`, args: ['name', 'resource_group_name'], required: ['name', 'resource_group_name'] },
  // hashicorp/kubernetes
  kubernetes_namespace_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/namespace_v1`, args: ['metadata', 'timeouts', 'wait_for_default_service_account'], required: ['metadata'], nested: { metadata: K8S_META } },
  kubernetes_service_account_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/service_account_v1`,
    args: ['metadata', 'automount_service_account_token', 'image_pull_secret', 'secret', 'timeouts'],
    required: ['metadata'],
    nested: { metadata: K8S_META },
  },
  kubernetes_config_map_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/config_map_v1`, args: ['metadata', 'data', 'binary_data', 'immutable'], required: ['metadata'], nested: { metadata: K8S_META } },
  kubernetes_secret_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/secret_v1`,
    args: ['metadata', 'data', 'binary_data', 'type', 'immutable', 'wait_for_service_account_token', 'timeouts'],
    required: ['metadata'],
    nested: { metadata: K8S_META },
  },
  kubernetes_deployment_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/deployment_v1`,
    args: ['metadata', 'spec', 'wait_for_rollout', 'timeouts'],
    required: ['metadata', 'spec'],
    nested: {
      metadata: K8S_META,
      spec: ['replicas', 'revision_history_limit', 'selector', 'strategy', 'template', 'min_ready_seconds', 'paused', 'progress_deadline_seconds'],
      'spec.strategy': ['type', 'rolling_update'],
      'spec.template': ['metadata', 'spec'],
      'spec.template.spec': [
        'service_account_name',
        'automount_service_account_token',
        'enable_service_links',
        'node_selector',
        'security_context',
        'toleration',
        'topology_spread_constraint',
        'init_container',
        'container',
        'volume',
        'affinity',
        'priority_class_name',
        'termination_grace_period_seconds',
        'image_pull_secrets',
        'runtime_class_name',
        'dns_policy',
        'host_network',
        'restart_policy',
      ],
      'spec.template.spec.security_context': ['run_as_non_root', 'run_as_user', 'run_as_group', 'fs_group', 'seccomp_profile', 'supplemental_groups', 'fs_group_change_policy', 'se_linux_options', 'sysctl', 'windows_options'],
      'spec.template.spec.toleration': ['key', 'operator', 'value', 'effect', 'toleration_seconds'],
      'spec.template.spec.container': [
        'name',
        'image',
        'image_pull_policy',
        'args',
        'command',
        'port',
        'env',
        'env_from',
        'startup_probe',
        'liveness_probe',
        'readiness_probe',
        'resources',
        'security_context',
        'volume_mount',
        'working_dir',
        'lifecycle',
        'termination_message_path',
        'termination_message_policy',
        'stdin',
        'tty',
      ],
      'spec.template.spec.init_container': ['name', 'image', 'image_pull_policy', 'args', 'command', 'env', 'resources', 'security_context', 'volume_mount', 'working_dir'],
      'spec.template.spec.container.security_context': ['allow_privilege_escalation', 'read_only_root_filesystem', 'privileged', 'capabilities', 'run_as_non_root', 'run_as_user', 'run_as_group', 'seccomp_profile', 'se_linux_options'],
      'spec.template.spec.container.port': ['name', 'container_port', 'protocol', 'host_ip', 'host_port'],
      'spec.template.spec.container.startup_probe': ['http_get', 'tcp_socket', 'exec', 'grpc', 'period_seconds', 'timeout_seconds', 'failure_threshold', 'success_threshold', 'initial_delay_seconds'],
      'spec.template.spec.container.liveness_probe': ['http_get', 'tcp_socket', 'exec', 'grpc', 'period_seconds', 'timeout_seconds', 'failure_threshold', 'success_threshold', 'initial_delay_seconds'],
      'spec.template.spec.container.readiness_probe': ['http_get', 'tcp_socket', 'exec', 'grpc', 'period_seconds', 'timeout_seconds', 'failure_threshold', 'success_threshold', 'initial_delay_seconds'],
      'spec.template.spec.container.volume_mount': ['name', 'mount_path', 'read_only', 'sub_path', 'mount_propagation'],
      'spec.template.spec.volume': ['name', 'config_map', 'secret', 'empty_dir', 'projected', 'persistent_volume_claim', 'host_path'],
    },
  },
  kubernetes_service_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/service_v1`,
    args: ['metadata', 'spec', 'wait_for_load_balancer', 'timeouts'],
    required: ['metadata'],
    nested: { metadata: K8S_META, spec: ['type', 'selector', 'port', 'cluster_ip', 'external_traffic_policy', 'internal_traffic_policy', 'load_balancer_class', 'load_balancer_source_ranges', 'session_affinity', 'ip_families', 'ip_family_policy'], 'spec.port': ['name', 'port', 'target_port', 'protocol', 'node_port', 'app_protocol'] },
  },
  kubernetes_pod_disruption_budget_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/pod_disruption_budget_v1`, args: ['metadata', 'spec'], required: ['metadata', 'spec'], nested: { metadata: K8S_META, spec: ['max_unavailable', 'min_available', 'selector'] } },
  kubernetes_network_policy_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/network_policy_v1`,
    args: ['metadata', 'spec'],
    required: ['metadata', 'spec'],
    nested: { metadata: K8S_META, spec: ['pod_selector', 'policy_types', 'ingress', 'egress'], 'spec.ingress': ['from', 'ports'], 'spec.ingress.ports': ['port', 'protocol', 'end_port'] },
  },
  kubernetes_role_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/role_v1`, args: ['metadata', 'rule'], required: ['metadata', 'rule'], nested: { metadata: K8S_META, rule: K8S_RULE } },
  kubernetes_role_binding_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/role_binding_v1`, args: ['metadata', 'role_ref', 'subject'], required: ['metadata', 'role_ref', 'subject'], nested: { metadata: K8S_META, role_ref: K8S_ROLE_REF, subject: K8S_SUBJECT } },
  kubernetes_cluster_role_v1: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/cluster_role_v1`, args: ['metadata', 'rule', 'aggregation_rule'], required: ['metadata'], nested: { metadata: K8S_META, rule: K8S_RULE } },
  kubernetes_cluster_role_binding_v1: {
    doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/cluster_role_binding_v1`,
    args: ['metadata', 'role_ref', 'subject'],
    required: ['metadata', 'role_ref', 'subject'],
    nested: { metadata: K8S_META, role_ref: K8S_ROLE_REF, subject: K8S_SUBJECT },
  },
  kubernetes_manifest: { doc: `${REG}/hashicorp/kubernetes/latest/docs/resources/manifest`, args: ['manifest', 'computed_fields', 'field_manager', 'object', 'timeouts', 'wait', 'wait_for'], required: ['manifest'] },
  // cloudflare/cloudflare (v5)
  cloudflare_workers_script: {
    doc: `${REG}/cloudflare/cloudflare/latest/docs/resources/workers_script`,
    args: ['account_id', 'script_name', 'content', 'content_file', 'content_sha256', 'content_type', 'main_module', 'body_part', 'compatibility_date', 'compatibility_flags', 'bindings', 'migrations', 'observability', 'placement', 'logpush', 'usage_model', 'keep_bindings', 'tail_consumers', 'limits', 'annotations'],
    required: ['script_name'],
    nested: {
      bindings: ['name', 'type', 'text', 'class_name', 'script_name', 'namespace_id', 'bucket_name', 'service', 'environment', 'json', 'id', 'database_id', 'queue_name', 'dataset', 'certificate_id', 'secret_name', 'store_id', 'workflow_name'],
      migrations: ['new_tag', 'old_tag', 'new_classes', 'new_sqlite_classes', 'deleted_classes', 'renamed_classes', 'transferred_classes', 'steps'],
      observability: ['enabled', 'head_sampling_rate', 'logs', 'traces'],
    },
  },
  cloudflare_workers_custom_domain: { doc: `${REG}/cloudflare/cloudflare/latest/docs/resources/workers_custom_domain`, args: ['account_id', 'zone_id', 'zone_name', 'hostname', 'service', 'environment'], required: ['hostname', 'service'] },
  cloudflare_workers_route: { doc: `${REG}/cloudflare/cloudflare/latest/docs/resources/workers_route`, args: ['zone_id', 'pattern', 'script'], required: ['pattern'] },
  // Built into Terraform (>= 1.4; no provider to require): terraform.io/builtin/terraform.
  terraform_data: { doc: 'https://developer.hashicorp.com/terraform/language/resources/terraform-data', args: ['input', 'triggers_replace'] },
};
/** Resource types of Terraform's built-in provider: never in required_providers. */
const BUILTIN_TYPES = new Set(['terraform_data']);
const META_ARGS = new Set(['count', 'for_each', 'lifecycle', 'depends_on', 'provider', 'provisioner', 'connection']);
const PROVIDER_OF: Readonly<Record<string, string>> = { aws: 'hashicorp/aws', google: 'hashicorp/google', azurerm: 'hashicorp/azurerm', kubernetes: 'hashicorp/kubernetes', cloudflare: 'cloudflare/cloudflare' };

// ── Loading ──
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
interface Dir {
  rel: string;
  files: string[];
  hcl: Json;
  text: string;
}

function tfFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.tf'))
    .map((f) => join(dir, f));
}

/** Merges the parsed files of one directory (blocks of the same kind are maps of lists). */
function merge(into: Json, from: Json): void {
  for (const [k, v] of Object.entries(from)) {
    if (Array.isArray(v)) into[k] = [...((into[k] as unknown[] | undefined) ?? []), ...v];
    else if (v && typeof v === 'object') {
      into[k] ??= {};
      merge(into[k] as Json, v as Json);
    } else into[k] = v;
  }
}

const dirs = new Map<string, Dir>();
beforeAll(async () => {
  for (const rel of [...MODULES, ...EXAMPLES]) {
    const files = tfFiles(join(TF, rel));
    const hcl: Json = {};
    let text = '';
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      text += src;
      merge(hcl, await parseHcl(basename(f), src));
    }
    dirs.set(rel, { rel, files, hcl, text });
  }
});
const get = (rel: string): Dir => dirs.get(rel)!;

/** `name => first block` for a block kind keyed by name (variable, output, module). */
function named(hcl: Json, kind: string): Map<string, Json> {
  return new Map(Object.entries((hcl[kind] ?? {}) as Record<string, Json[]>).map(([k, v]) => [k, v[0]!]));
}
/** [type, name, body] of every resource and data source ('data.<type>' for the latter). */
function resources(hcl: Json): [string, string, Json][] {
  const out: [string, string, Json][] = [];
  for (const [kind, prefix] of [
    ['resource', ''],
    ['data', 'data.'],
  ] as const) {
    for (const [type, byName] of Object.entries((hcl[kind] ?? {}) as Record<string, Record<string, Json[]>>)) {
      for (const [name, bodies] of Object.entries(byName)) out.push([`${prefix}${type}`, name, bodies[0]!]);
    }
  }
  return out;
}
/** Keys of a block body, with the contents of `dynamic "<name>"` blocks counted as <name>. */
function blockKeys(body: Json): string[] {
  const keys = Object.keys(body).filter((k) => k !== 'dynamic');
  return [...keys, ...Object.keys((body.dynamic ?? {}) as Json)];
}
/** The bodies at a dotted path of nested blocks (lists of objects), through dynamic blocks. */
function at(body: Json, path: string): Json[] {
  let cur: Json[] = [body];
  for (const seg of path.split('.')) {
    const next: Json[] = [];
    for (const b of cur) {
      const direct = b[seg] as unknown;
      if (Array.isArray(direct)) next.push(...direct.filter((x): x is Json => !!x && typeof x === 'object'));
      for (const d of ((b.dynamic as Json | undefined)?.[seg] ?? []) as Json[]) next.push(...((d.content ?? []) as Json[]));
    }
    cur = next;
  }
  return cur;
}
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) strings(x, out);
  return out;
}
const refs = (d: Dir, re: RegExp): Set<string> => new Set(strings(d.hcl).flatMap((s) => [...s.matchAll(re)].map((m) => m[1]!)));

describe('terraform modules: static checks (HCL parsed with @cdktf/hcl2json)', () => {
  it('every module and example exists, and each module has versions.tf, variables.tf, outputs.tf and a README.md', () => {
    for (const rel of MODULES) {
      for (const f of ['versions.tf', 'variables.tf', 'outputs.tf', 'README.md']) expect(existsSync(join(TF, rel, f)), `${rel}/${f}`).toBe(true);
    }
    for (const rel of EXAMPLES) for (const f of ['versions.tf', 'main.tf']) expect(existsSync(join(TF, rel, f)), `${rel}/${f}`).toBe(true);
    // Nothing under terraform/ escapes the lists above (a new module must be checked too).
    const found = (base: string): string[] =>
      readdirSync(join(TF, base))
        .filter((n) => statSync(join(TF, base, n)).isDirectory())
        .flatMap((n) => [`${base}/${n}`, ...(existsSync(join(TF, base, n, 'modules')) ? found(`${base}/${n}/modules`) : [])]);
    expect(found('modules').sort()).toEqual([...MODULES].sort());
    expect(found('examples').sort()).toEqual([...EXAMPLES].sort());
  });

  it('requires Terraform >= 1.6 everywhere', () => {
    for (const d of dirs.values()) {
      const v = (d.hcl.terraform as Json[] | undefined)?.[0]?.required_version as string | undefined;
      expect(v, d.rel).toMatch(/^>=\s*1\.(\d+)/);
      expect(Number(/^>=\s*1\.(\d+)/.exec(v!)![1]), d.rel).toBeGreaterThanOrEqual(6);
    }
  });

  it('constrains every provider it uses in required_providers (source, lower and upper bound), and no other', () => {
    for (const d of dirs.values()) {
      const used = new Set(resources(d.hcl).filter(([type]) => !BUILTIN_TYPES.has(type)).map(([type]) => type.replace(/^data\./, '').split('_')[0]!));
      for (const p of Object.keys((d.hcl.provider ?? {}) as Json)) used.add(p);
      const req = ((d.hcl.terraform as Json[])[0]!.required_providers as Json[] | undefined)?.[0] ?? {};
      expect(Object.keys(req).sort(), d.rel).toEqual([...used].sort());
      for (const [name, spec] of Object.entries(req as Record<string, { source: string; version: string }>)) {
        expect(spec.source, `${d.rel} ${name}`).toBe(PROVIDER_OF[name]);
        expect(spec.version, `${d.rel} ${name}`).toMatch(/^>=\s*[\d.]+,\s*<\s*[\d.]+$/);
      }
      if (PROVIDER_FREE.includes(d.rel)) expect(used.size, d.rel).toBe(0);
    }
  });

  it('every variable has a description and a type, and a validation unless it is a bool or free-form', () => {
    const missing: string[] = [];
    for (const d of dirs.values()) {
      for (const [name, v] of named(d.hcl, 'variable')) {
        const id = `${d.rel}:${name}`;
        if (typeof v.description !== 'string' || v.description.trim().length < 10) missing.push(`${id}: description`);
        if (typeof v.type !== 'string') missing.push(`${id}: type`);
        const isBool = v.type === '${bool}';
        const validated = Array.isArray(v.validation) && v.validation.length > 0;
        if (!isBool && !validated && !FREE_FORM[id]) missing.push(`${id}: validation`);
        if (validated) for (const val of v.validation as Json[]) if (!String(val.condition).includes(`var.${name}`)) missing.push(`${id}: a validation that does not test var.${name}`);
      }
    }
    expect(missing).toEqual([]);
    for (const id of Object.keys(FREE_FORM)) {
      const [rel, name] = id.split(':') as [string, string];
      expect(named(get(rel).hcl, 'variable').has(name), `FREE_FORM names a variable that does not exist: ${id}`).toBe(true);
    }
  });

  it('every output has a description', () => {
    for (const d of dirs.values()) for (const [name, o] of named(d.hcl, 'output')) expect(typeof o.description === 'string' && o.description.length > 10, `${d.rel} output ${name}`).toBe(true);
  });

  it('every var., local. and module. reference resolves', () => {
    for (const d of dirs.values()) {
      const vars = named(d.hcl, 'variable');
      for (const v of refs(d, /\bvar\.([a-z0-9_]+)/g)) expect(vars.has(v), `${d.rel}: var.${v} is not declared`).toBe(true);
      const locals = new Set(((d.hcl.locals ?? []) as Json[]).flatMap((l) => Object.keys(l)));
      for (const l of refs(d, /\blocal\.([a-z0-9_]+)/g)) expect(locals.has(l), `${d.rel}: local.${l} is not declared`).toBe(true);
      const mods = named(d.hcl, 'module');
      for (const s of strings(d.hcl)) {
        for (const m of s.matchAll(/\bmodule\.([a-z0-9_]+)\.([a-z0-9_]+)/g)) {
          const call = mods.get(m[1]!);
          expect(call, `${d.rel}: module.${m[1]} is not called`).toBeDefined();
          const target = relative(TF, resolve(TF, d.rel, call!.source as string));
          expect(named(get(target).hcl, 'output').has(m[2]!), `${d.rel}: ${target} has no output ${m[2]}`).toBe(true);
        }
      }
    }
  });

  it('every module call passes only variables the module declares, and sets every required one', () => {
    let calls = 0;
    for (const d of dirs.values()) {
      for (const [name, call] of named(d.hcl, 'module')) {
        calls++;
        const source = call.source as string;
        expect(source, `${d.rel} module ${name}: a local source`).toMatch(/^\.\.?\//);
        const target = relative(TF, resolve(TF, d.rel, source));
        expect(dirs.has(target), `${d.rel} module ${name}: ${target}`).toBe(true);
        const vars = named(get(target).hcl, 'variable');
        const passed = Object.keys(call).filter((k) => !['source', 'providers', 'depends_on', 'count', 'for_each', 'version'].includes(k));
        for (const p of passed) expect(vars.has(p), `${d.rel} module ${name}: ${target} has no variable ${p}`).toBe(true);
        for (const [v, spec] of vars) if (!('default' in spec)) expect(passed, `${d.rel} module ${name}: required ${target} variable ${v} not set`).toContain(v);
      }
    }
    expect(calls).toBeGreaterThanOrEqual(14);
  });

  it('the examples pass their policy templates exactly the variables the templates use', () => {
    let checked = 0;
    for (const ex of EXAMPLES) {
      const tpl = join(TF, ex, 'policy.yaml.tftpl');
      if (!existsSync(tpl)) continue;
      const used = new Set<string>();
      for (const m of readFileSync(tpl, 'utf8').matchAll(/\$\{([^}]*)\}/g)) for (const id of m[1]!.match(/[a-z_]+/g) ?? []) if (!['jsonencode', 'for', 'in', 'k', 'v'].includes(id)) used.add(id);
      const call = strings(get(ex).hcl).find((x) => x.includes('policy.yaml.tftpl'))!;
      const args = new RegExp('tftpl", \\{(.*)\\}\\)', 's').exec(call)![1]!;
      const passed = new Set([...args.matchAll(/([a-z_]+)\s*=/g)].map((m) => m[1]!));
      expect([...passed].sort(), ex).toEqual([...used].sort());
      checked++;
    }
    expect(checked).toBe(3);
  });

  it('every output of the iam modules is consumed by an example', () => {
    for (const iam of ['modules/iam-aws', 'modules/iam-gcp', 'modules/iam-azure']) {
      const used = new Set<string>();
      for (const ex of EXAMPLES) {
        const d = get(ex);
        for (const [name, call] of named(d.hcl, 'module')) {
          if (relative(TF, resolve(TF, ex, call.source as string)) !== iam) continue;
          for (const s of strings(d.hcl)) for (const m of s.matchAll(new RegExp(`\\bmodule\\.${name}\\.([a-z0-9_]+)`, 'g'))) used.add(m[1]!);
        }
      }
      expect([...named(get(iam).hcl, 'output').keys()].filter((o) => !used.has(o)), `${iam} outputs no example uses`).toEqual([]);
    }
  });

  it('resource types and their arguments are in the provider schema table (documentation cited per entry)', () => {
    const problems: string[] = [];
    for (const d of dirs.values()) {
      for (const [type, name, body] of resources(d.hcl)) {
        const s = SCHEMA[type];
        if (!s) {
          problems.push(`${d.rel} ${type}.${name}: not in the schema table`);
          continue;
        }
        const keys = blockKeys(body);
        for (const k of keys) if (!s.args.includes(k) && !META_ARGS.has(k)) problems.push(`${d.rel} ${type}.${name}: unknown argument ${k} (${s.doc})`);
        for (const r of s.required ?? []) if (!keys.includes(r)) problems.push(`${d.rel} ${type}.${name}: missing required ${r} (${s.doc})`);
        for (const [path, allowed] of Object.entries(s.nested ?? {})) {
          for (const b of at(body, path)) for (const k of blockKeys(b)) if (!allowed.includes(k)) problems.push(`${d.rel} ${type}.${name}: unknown ${path}.${k} (${s.doc})`);
        }
      }
    }
    expect(problems).toEqual([]);
    for (const [type, s] of Object.entries(SCHEMA)) {
      if (BUILTIN_TYPES.has(type)) expect(s.doc).toMatch(/^https:\/\/developer\.hashicorp\.com\/terraform\/language\/resources\/[a-z-]+$/);
      else expect(s.doc).toMatch(/^https:\/\/registry\.terraform\.io\/providers\/[a-z]+\/[a-z]+\/latest\/docs\/(resources|data-sources)\/[a-z0-9_]+/);
    }
  });

  it('iam-aws: the key policy gates GenerateDataKey/Decrypt on NitroTPM PCRs and the disk-key context, with no account-root grant', () => {
    const d = get('modules/iam-aws');
    const doc = (d.hcl.data as Json).aws_iam_policy_document.key[0] as Json;
    const statements = at(doc, 'statement');
    const use = statements.find((s) => s.sid === 'KeysOnlyToAttestedNitroTPM')!;
    expect(use.actions).toEqual(['kms:GenerateDataKey', 'kms:Decrypt']);
    const conditions = at(use, 'condition');
    const locals = Object.assign({}, ...((d.hcl.locals ?? []) as Json[])) as Json;
    expect([locals.context_purpose, locals.context_cluster]).toEqual(['kms:EncryptionContext:attest-broker:purpose', 'kms:EncryptionContext:attest-broker:cluster']);
    expect(conditions.map((c) => c.variable as string)).toEqual(expect.arrayContaining(['${local.context_purpose}', '${local.context_cluster}']));
    const pcrConditions = conditions.filter((c) => String(c.variable).startsWith('kms:RecipientAttestation:NitroTPMPCR'));
    // The first PCR as a static block, the others through a dynamic block: every one of them.
    expect(pcrConditions.length).toBe(2);
    expect(pcrConditions.every((c) => c.test === 'StringEqualsIgnoreCase')).toBe(true);
    expect(named(d.hcl, 'variable').get('nitrotpm_pcrs')!.validation[0].condition).toContain('length(var.nitrotpm_pcrs) > 0');
    // The Nitro Enclaves keys would never match a NitroTPM document.
    expect(d.text).not.toMatch(/RecipientAttestation:(ImageSha384|PCR\d)/);
    // The context keys are the broker's.
    const service = readFileSync(join(ROOT, 'broker/release/service.ts'), 'utf8');
    expect(service).toContain("'attest-broker:purpose': 'disk-key'");
    expect(service).toContain("'attest-broker:cluster': decision.cluster");
    // No statement for the account root (it would let IAM policies grant Decrypt unconditioned).
    expect(d.text).not.toMatch(/:root"/);
    // Key admins: no use of the key and no grants (a grant carries no attestation condition).
    expect((locals.admin_actions as string[]).filter((a) => /^kms:\*$|^kms:Create\*$|Grant|Encrypt|Decrypt|GenerateDataKey/.test(a))).toEqual([]);
    const wrap = statements.find((s) => s.sid === 'BrokerWrapsDiskKeysOfItsClusters')!;
    expect(wrap.actions).not.toContain('kms:Decrypt');
  });

  it('cluster-rbac: the same rules, role references and subjects as deploy/kubernetes (base rbac.yaml, components/kubeadm)', () => {
    const docs = ['deploy/kubernetes/base/rbac.yaml', 'deploy/kubernetes/components/kubeadm/rbac.yaml'].flatMap((f) => parseAllDocuments(readFileSync(join(ROOT, f), 'utf8')).map((x) => x.toJS() as Json));
    const hcl = get('modules/cluster-rbac').hcl;
    const kinds: Record<string, string> = { Role: 'kubernetes_role_v1', ClusterRole: 'kubernetes_cluster_role_v1', RoleBinding: 'kubernetes_role_binding_v1', ClusterRoleBinding: 'kubernetes_cluster_role_binding_v1' };
    // By kind and name (a Role and its RoleBinding share a name). for_each bindings: one per key.
    const byName = new Map<string, [string, Json]>();
    for (const [type, , body] of resources(hcl)) {
      if (type === 'kubernetes_manifest') continue;
      const name = String(at(body, 'metadata')[0]!.name);
      if (name === '${each.key}') {
        for (const m of String(body.for_each).matchAll(/"([^"]+)" = "([^"]+)"/g)) byName.set(`${type}/${m[1]}`, [type, { ...body, role_ref: [{ ...at(body, 'role_ref')[0], name: m[2] }] }]);
      } else byName.set(`${type}/${name}`, [type, body]);
    }
    let compared = 0;
    for (const o of docs) {
      if (!kinds[o.kind as string]) continue;
      const hit = byName.get(`${kinds[o.kind as string]}/${o.metadata.name}`);
      expect(hit, `${o.kind} ${o.metadata.name}`).toBeDefined();
      const [type, body] = hit!;
      expect(type).toBe(kinds[o.kind as string]);
      if (o.metadata.namespace && o.metadata.namespace !== 'attest-broker') expect(at(body, 'metadata')[0]!.namespace).toBe(o.metadata.namespace);
      if (o.rules) {
        const rules = at(body, 'rule').map((r) => ({ apiGroups: r.api_groups, resources: r.resources, verbs: r.verbs, ...(r.resource_names ? { resourceNames: r.resource_names } : {}) }));
        expect(rules, o.metadata.name as string).toEqual(o.rules);
      }
      if (o.roleRef) {
        const ref = at(body, 'role_ref')[0]!;
        expect(ref.kind).toBe(o.roleRef.kind);
        // Either the literal name or a reference to the role this module creates with that name.
        if (!String(ref.name).startsWith('${')) expect(ref.name).toBe(o.roleRef.name);
        else expect(byName.has(`${kinds[o.roleRef.kind as string]}/${o.roleRef.name}`)).toBe(true);
        const subjects = at(body, 'subject');
        expect(subjects.length).toBe((o.subjects as Json[]).length);
        for (const [i, s] of (o.subjects as Json[]).entries()) {
          if (s.kind === 'Group') expect(subjects[i]!.name === s.name || subjects[i]!.name === '${local.token_group}').toBe(true);
          else expect(subjects[i]!.kind).toBe('${local.subject.kind}');
        }
      }
      compared++;
    }
    expect(compared).toBe(10);
    expect(String((hcl.locals as Json[]).find((l) => 'token_group' in l)!.token_group)).toBe('system:bootstrappers:attest-broker');
    // The admission policy's validation is the YAML's, word for word.
    const vap = docs.find((o) => o.kind === 'ValidatingAdmissionPolicy')!;
    const manifest = get('modules/cluster-rbac').text;
    expect(manifest).toContain(String(vap.spec.validations[0].expression).replace(/\s+/g, ' ').trim());
  });

  it('broker-kubernetes: the security settings, probes and volumes of deploy/kubernetes/base/deployment.yaml', () => {
    const base = parseAllDocuments(readFileSync(join(ROOT, 'deploy/kubernetes/base/deployment.yaml'), 'utf8'))[0]!.toJS() as Json;
    const hcl = get('modules/broker-kubernetes').hcl;
    const dep = (hcl.resource as Json).kubernetes_deployment_v1.broker[0] as Json;
    const pod = at(dep, 'spec.template.spec')[0]!;
    const psc = at(pod, 'security_context')[0]!;
    const bpsc = base.spec.template.spec.securityContext;
    expect([psc.run_as_non_root, psc.run_as_user, psc.run_as_group, psc.fs_group]).toEqual([bpsc.runAsNonRoot, bpsc.runAsUser, bpsc.runAsGroup, bpsc.fsGroup]);
    expect(at(psc, 'seccomp_profile')[0]!.type).toBe('RuntimeDefault');
    for (const c of [...at(pod, 'container'), ...at(pod, 'init_container')]) {
      const sc = at(c, 'security_context')[0]!;
      expect([sc.allow_privilege_escalation, sc.read_only_root_filesystem, sc.privileged, at(sc, 'capabilities')[0]!.drop]).toEqual([false, true, false, ['ALL']]);
    }
    const broker = at(pod, 'container')[0]!;
    expect(broker.args).toEqual(base.spec.template.spec.containers[0].args);
    expect(at(pod, 'init_container')[0]!.args).toEqual(base.spec.template.spec.initContainers[0].args);
    expect(at(broker, 'startup_probe.http_get')[0]!.path).toBe('/healthz');
    expect(at(broker, 'liveness_probe.http_get')[0]!.path).toBe('/healthz');
    expect(at(broker, 'readiness_probe.http_get')[0]!.path).toBe('/readyz');
    // Every mounted volume exists.
    const volumes = new Set(at(pod, 'volume').map((v) => v.name as string));
    for (const c of [...at(pod, 'container'), ...at(pod, 'init_container')]) for (const m of at(c, 'volume_mount')) expect(volumes.has(m.name as string), m.name as string).toBe(true);
    // The control-plane option: the toleration and the node selector.
    const locals = Object.assign({}, ...((hcl.locals ?? []) as Json[])) as Json;
    expect(locals.tolerations).toContain('node-role.kubernetes.io/control-plane');
    expect(locals.node_selector).toContain('"node-role.kubernetes.io/control-plane" = ""');
    // The config the broker reads comes from modules/config's templatefile.
    expect(get('modules/broker-kubernetes/modules/config').text).toContain('templatefile("${path.module}/templates/config.yaml.tftpl"');
  });

  it('broker-cloudflare: the bindings broker/worker.ts reads and wrangler.toml declares, with its Durable Object migration', () => {
    const hcl = get('modules/broker-cloudflare').hcl;
    const script = (hcl.resource as Json).cloudflare_workers_script.broker[0] as Json;
    // Always-bound ones in local.fixed_bindings; the rest bound when not empty, from
    // local.plain_optional (plain_text) and local.secret_optional (secret_text).
    const locals = Object.assign({}, ...((hcl.locals as Json[] | undefined) ?? [])) as Json;
    const fixed = locals.fixed_bindings as Json[];
    const plain = locals.plain_optional as Json[];
    const secret = locals.secret_optional as Json[];
    expect(script.bindings).toBe('${local.bindings}');
    expect(String(locals.bindings)).toMatch(/concat\(\s*local\.fixed_bindings,[\s\S]*local\.plain_optional : \{ type = "plain_text"[\s\S]*local\.secret_optional : \{ type = "secret_text"/);
    const worker = readFileSync(join(ROOT, 'broker/worker.ts'), 'utf8');
    const env = /export interface Env \{([\s\S]*?)\n\}/.exec(worker)![1]!;
    const fields = [...env.matchAll(/^\s+([A-Z][A-Z0-9_]*)\??:/gm)].map((m) => m[1]!);
    const names = [...fixed, ...plain, ...secret].map((b) => b.name as string);
    expect(new Set(names).size, 'a binding listed twice').toBe(names.length);
    expect([...names].sort()).toEqual(fields.sort());
    // Binding types of the v5 provider (the `type` of each bindings element, ${SCHEMA.cloudflare_workers_script!.doc}).
    for (const b of fixed) expect(['durable_object_namespace', 'plain_text', 'secret_text']).toContain(b.type);
    // Credentials and tokens only ever as secrets, and each secret from a variable marked sensitive.
    for (const b of [...fixed, ...plain]) expect(b.name as string, `${b.name} looks like a credential`).not.toMatch(/SECRET|TOKEN$|KEK|ACCESS_KEY|SESSION|SERVICE_ACCOUNT_JSON|ADMIN/);
    const vars = named(hcl, 'variable');
    for (const b of secret) {
      const v = /^\$\{var\.([a-z_]+)/.exec(String(b.text))?.[1];
      expect(v, `${b.name}: from a variable`).toBeDefined();
      expect(vars.get(v!)!.sensitive, `${b.name}: var.${v} must be sensitive = true`).toBe(true);
    }
    for (const n of ['TRUST_ROOTS_PEM', 'POLICY_YAML', 'ADMIN_TOKEN', 'TOKENREVIEW_BEARER_TOKEN', 'KMS_LOCAL_KEK', 'AWS_SECRET_ACCESS_KEY', 'GCP_SERVICE_ACCOUNT_JSON', 'AZURE_CLIENT_SECRET']) {
      expect(secret.map((b) => b.name), n).toContain(n);
    }
    // Every release binding of WorkerReleaseEnv is settable.
    const release = readFileSync(join(ROOT, 'broker/release/runtime.worker.ts'), 'utf8');
    const relEnv = /export interface WorkerReleaseEnv \{([\s\S]*?)\n\}/.exec(release)![1]!;
    for (const m of relEnv.matchAll(/^\s+([A-Z][A-Z0-9_]*)\??:/gm)) expect([...plain, ...secret].map((b) => b.name), m[1]).toContain(m[1]);
    const pre = JSON.stringify(script.lifecycle);
    expect(pre).toContain('tokenreview_bearer_sha256');
    expect(pre).toContain('local.kms_secrets');
    const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
    const doName = /\[\[durable_objects\.bindings\]\]\s*name = "([A-Z_]+)"\s*class_name = "(\w+)"/.exec(toml)!;
    expect(fixed.find((b) => b.type === 'durable_object_namespace')).toMatchObject({ name: doName[1], class_name: doName[2] });
    const migration = /\[\[migrations\]\]\s*tag = "(\w+)"\s*new_sqlite_classes = \["(\w+)"\]/.exec(toml)!;
    const migrations = get('modules/broker-cloudflare').text;
    expect(migrations).toContain(`new_tag            = "${migration[1]}"`);
    expect(migrations).toContain(`new_sqlite_classes = ["${migration[2]}"]`);
    expect(script.compatibility_date).toBe('${var.compatibility_date}');
    expect(String(named(hcl, 'variable').get('compatibility_date')!.default)).toBe(/compatibility_date = "([\d-]+)"/.exec(toml)![1]);
    expect(script.compatibility_flags).toEqual(JSON.parse(/compatibility_flags = (\[.*\])/.exec(toml)![1]!) as string[]);
  });

  it('broker-cloudflare: roots and policy are loaded with `attest-broker worker load` after the upload, the admin token in the environment only', () => {
    const hcl = get('modules/broker-cloudflare').hcl;
    const load = (hcl.resource as Json).terraform_data.load[0] as Json;
    expect(load.count).toBe('${local.load ? 1 : 0}');
    const exec = load.provisioner['local-exec'][0] as Json;
    expect(exec.command).toBe('${local.load_command}');
    expect(Object.keys(exec.environment as Json)).toEqual(['ATTEST_BROKER_ADMIN_TOKEN']);
    const locals = Object.assign({}, ...((hcl.locals as Json[] | undefined) ?? [])) as Json;
    // The command line never carries the token; it names options the CLI has.
    expect(String(locals.load_command) + String(locals.load_args)).not.toMatch(/admin_token|ADMIN_TOKEN/);
    const cli = readFileSync(join(ROOT, 'broker/commands/worker.node.ts'), 'utf8');
    expect(cli).toContain("TOKEN_ENV = 'ATTEST_BROKER_ADMIN_TOKEN'");
    for (const opt of String(locals.load_args).match(/--[a-z-]+/g)!) expect(cli, opt).toContain(`'${opt}`);
    expect(JSON.stringify(load.depends_on)).toContain('cloudflare_workers_script.broker');
    expect(JSON.stringify(load.triggers_replace)).toMatch(/filesha256/);
  });

  it('user-data: the templates are byte copies of deploy/cloud-init (fix: cp deploy/cloud-init/*.yaml terraform/modules/user-data/templates/)', () => {
    for (const p of ['aws', 'azure', 'gcp', 'generic']) {
      expect(readFileSync(join(TF, 'modules/user-data/templates', `${p}.yaml`), 'utf8'), p).toBe(readFileSync(join(ROOT, 'deploy/cloud-init', `${p}.yaml`), 'utf8'));
    }
    // No module reads outside its own directory (that breaks every non-local source).
    for (const rel of MODULES) expect(get(rel).text, rel).not.toMatch(/path\.module\}\/\.\./);
  });

  it('broker-offcluster/modules/config is a byte copy of broker-kubernetes/modules/config (fix: cp -r terraform/modules/broker-kubernetes/modules/config/. terraform/modules/broker-offcluster/modules/config/)', () => {
    const files = (d: string, base = d): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? files(join(d, n), base) : [relative(base, join(d, n))]));
    const a = join(TF, 'modules/broker-kubernetes/modules/config');
    const b = join(TF, 'modules/broker-offcluster/modules/config');
    expect(files(b).sort()).toEqual(files(a).sort());
    for (const f of files(a)) expect(readFileSync(join(b, f), 'utf8'), f).toBe(readFileSync(join(a, f), 'utf8'));
  });

  it('broker-kubernetes webhook mode: its own port, Service, Secret and mount; the callers from modules/webhook; secret mode by default', () => {
    const hcl = get('modules/broker-kubernetes').hcl;
    const vars = named(hcl, 'variable');
    expect(vars.get('release_mode')!.default).toBe('secret');
    expect(vars.get('webhook_bearer_tokens')!.sensitive).toBe(true);
    expect(vars.get('webhook_tls_private_key_pem')!.sensitive).toBe(true);
    const res = hcl.resource as Json;
    const svc = res.kubernetes_service_v1.webhook[0] as Json;
    expect(svc.count).toBe('${local.webhook ? 1 : 0}');
    expect(at(svc, 'spec.port').map((p) => p.target_port)).toEqual(['webhook']);
    // The join Service never carries the webhook port.
    expect(at(res.kubernetes_service_v1.broker[0] as Json, 'spec.port').map((p) => p.name)).toEqual(['${local.port_name}']);
    const pod = at(res.kubernetes_deployment_v1.broker[0] as Json, 'spec.template.spec')[0]!;
    const broker = at(pod, 'container')[0]!;
    expect(at(broker, 'port').map((p) => p.name)).toContain('webhook');
    const mount = at(broker, 'volume_mount').find((m) => m.name === 'webhook-tls')!;
    // The paths config.yaml names (modules/config: <config_dir>/webhook/…).
    expect(mount.mount_path).toBe('/etc/attest-broker/webhook');
    expect(get('modules/broker-kubernetes/modules/config').text).toContain('certFile = "${local.dir}/webhook/tls.crt", keyFile = "${local.dir}/webhook/tls.key"');
    expect(String(res.kubernetes_secret_v1.webhook_tls[0].data)).toContain('client-ca.crt');
    const cfg = named(hcl, 'module').get('config')!;
    expect(cfg.release_mode).toBe('${var.release_mode}');
    expect(String(cfg.token_review)).toContain('callers = module.webhook[0].callers');
    expect(named(hcl, 'module').get('webhook')!.count).toBe('${local.webhook ? 1 : 0}');
    expect(named(hcl, 'output').get('webhook_kubeconfigs')!.sensitive).toBe(true);
    // Only digests of the bearer tokens reach the broker's configuration.
    expect(get('modules/broker-kubernetes/modules/webhook').text).toMatch(/nonsensitive\(sha256\(var\.bearer_tokens\[k\]\)\)/);
  });

  it('cluster-rbac: a User or Group subject for a broker outside the cluster; webhook mode drops the Secret Role and the admission policy', () => {
    const d = get('modules/cluster-rbac');
    const locals = Object.assign({}, ...((d.hcl.locals ?? []) as Json[])) as Json;
    expect(String(named(d.hcl, 'variable').get('broker_subject')!.validation[0].condition)).toContain('["ServiceAccount", "User", "Group"]');
    expect(String(locals.subject)).toContain('kind = var.broker_subject.kind');
    expect(String(locals.identity_match)).toContain("in request.userInfo.groups");
    const res = d.hcl.resource as Json;
    for (const r of [res.kubernetes_role_v1.bootstrap_tokens[0], res.kubernetes_role_binding_v1.bootstrap_tokens[0]] as Json[]) expect(r.count).toBe('${local.secrets ? 1 : 0}');
    expect(res.kubernetes_manifest.bootstrap_tokens_only[0].count).toBe('${local.secrets && var.admission_policy ? 1 : 0}');
    expect(String(locals.secrets)).toBe('${var.release_mode == "secret"}');
  });

  it('says what could not be planned without the providers', () => {
    const needProviders = [...dirs.values()].filter((d) => !PROVIDER_FREE.includes(d.rel)).map((d) => d.rel);
    expect(Object.keys(NOT_PLANNED).sort()).toEqual(needProviders.sort());
    console.info(
      [
        'terraform: NOT planned (no provider can be downloaded here, and CI has no terraform):',
        ...Object.entries(NOT_PLANNED).map(([k, v]) => `  ${k}: ${v}`),
        `  provider-free, validated and applied when terraform is installed: ${PROVIDER_FREE.join(', ')}`,
      ].join('\n'),
    );
  });
});

// ── With terraform (opt-in: CI has none) ──
const TF_ENV = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' };
const HAVE_TERRAFORM = (() => {
  try {
    execFileSync('terraform', ['version'], { stdio: 'ignore', env: TF_ENV });
    return true;
  } catch {
    return false;
  }
})();
const HAVE_CLOUD_INIT = (() => {
  try {
    execFileSync('cloud-init', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const MIRROR = process.env.TF_PROVIDER_MIRROR ?? '/opt/tf-plugins';
const HAVE_AWS_MIRROR = HAVE_TERRAFORM && existsSync(join(MIRROR, 'registry.terraform.io/hashicorp/aws'));
const tfIt = HAVE_TERRAFORM ? it : it.skip;

function terraform(cwd: string, args: string[], env: NodeJS.ProcessEnv = TF_ENV): string {
  return execFileSync('terraform', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}
/** A throw-away root module in a temp dir (module sources relative to it), applied offline. */
function applyRoot(main: string): { out: (name: string) => string; plan: () => string; dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tf-root-'));
  writeFileSync(join(dir, 'main.tf'), main);
  terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
  return {
    dir,
    out: (name) => {
      terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      return terraform(dir, ['output', '-raw', name]);
    },
    plan: () => terraform(dir, ['plan', '-input=false', '-no-color']),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}
const src = (dir: string, rel: string): string => relative(dir, join(TF, rel));
/** The error `terraform plan` fails with, on one line (Terraform wraps its messages). */
function refusal(dir: string, env: NodeJS.ProcessEnv = TF_ENV): string {
  try {
    terraform(dir, ['plan', '-input=false', '-no-color'], env);
  } catch (e) {
    return `${(e as { stderr?: string }).stderr ?? ''}`.replace(/[│╷╵\s]+/g, ' ');
  }
  return 'plan succeeded';
}

describe('terraform modules with the terraform binary', () => {
  if (!HAVE_TERRAFORM) console.warn('terraform not installed: only the static checks ran (the "(needs terraform)" tests are skipped)');

  tfIt('terraform fmt -check -recursive terraform/ (needs terraform)', () => {
    expect(terraform(ROOT, ['fmt', '-check', '-recursive', '-no-color', 'terraform/'])).toBe('');
  });

  tfIt('broker-cloudflare without its provider: the bindings it computes and the loader it runs, applied offline with the cloudflare resources cut out (needs terraform)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-cf-'));
    try {
      const mod = join(TF, 'modules/broker-cloudflare');
      // main.tf minus the cloudflare_* resources (no provider here); the loader keeps its body.
      const kept: string[] = [];
      let depth = 0;
      let skipping = false;
      for (const line of readFileSync(join(mod, 'main.tf'), 'utf8').split('\n')) {
        if (line.startsWith('resource "cloudflare_')) skipping = true;
        if (skipping) {
          depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
          if (depth === 0 && line.includes('}')) skipping = false;
          continue;
        }
        if (/^\s+depends_on = \[cloudflare_/.test(line)) continue;
        kept.push(line.replace('cloudflare_workers_script.broker.script_name', 'var.script_name'));
      }
      writeFileSync(join(dir, 'main.tf'), kept.join('\n') + '\noutput "bindings" {\n  value = [for b in local.bindings : "${b.type}:${b.name}"]\n}\n');
      for (const f of ['variables.tf', 'outputs.tf']) writeFileSync(join(dir, f), readFileSync(join(mod, f), 'utf8').replace('cloudflare_workers_script.broker.script_name', 'var.script_name'));
      writeFileSync(join(dir, 'worker.js'), 'export default {};\n');
      execFileSync('mkdir', ['-p', join(dir, 'trust')]);
      writeFileSync(join(dir, 'trust', 'aws-nitro-root-g1.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      writeFileSync(join(dir, "the cluster's policy.yaml"), 'kind: JoinPolicy\n');
      // The loader stand-in records what it was given (the real CLI: test/broker/wrangler-dev.test.ts).
      writeFileSync(join(dir, 'loader.mjs'), "import { writeFileSync } from 'node:fs';\nwriteFileSync(new URL('./ran.json', import.meta.url), JSON.stringify({ argv: process.argv.slice(2), token: process.env.ATTEST_BROKER_ADMIN_TOKEN }));\n");
      const token = 'T'.repeat(40);
      const tfvars = (extra: string) =>
        writeFileSync(
          join(dir, 'terraform.tfvars'),
          [
            'account_id        = "0123456789abcdef0123456789abcdef"',
            'script_file       = "worker.js"',
            'providers_enabled = ["aws"]',
            'hostname          = "attest.example.com"',
            'zone_id           = "0123456789abcdef0123456789abcdef"',
            extra,
          ].join('\n'),
        );
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);

      // Defaults: only the fixed bindings, no loader.
      tfvars('');
      terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      expect(JSON.parse(terraform(dir, ['output', '-json', 'bindings']))).toEqual([
        'durable_object_namespace:STATE', 'plain_text:PROVIDERS', 'plain_text:CHALLENGE_TTL_SECONDS', 'plain_text:BODY_LIMIT_BYTES', 'plain_text:LOG_LEVEL', 'plain_text:CONFIG_REFRESH_SECONDS',
      ]);
      expect(existsSync(join(dir, 'ran.json'))).toBe(false);

      // Release, KMS and the loader.
      tfvars(
        [
          `admin_token    = "${token}"`,
          'trust_dir      = "trust"',
          `policy_file    = "the cluster's policy.yaml"`,
          `loader_command = "node ${join(dir, 'loader.mjs')}"`,
          'release = {',
          '  cluster    = "prod"',
          '  api_server = "https://api.prod.example:6443"',
          '  ca_pem     = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"',
          '  tokenreview_audiences = ["a", "b"]',
          '  tpm_seal   = "require"',
          '}',
          `tokenreview_bearer_token = "${'b'.repeat(40)}"`,
          'kms             = { kind = "aws-kms", aws_kms_key_id = "alias/attest", aws_region = "eu-west-1" }',
          'kms_credentials = { aws_access_key_id = "AKIAEXAMPLE", aws_secret_access_key = "secret" }',
          'tracing         = { otlp_endpoint = "http://otel-collector.example:4318", sample_ratio = 0.25 }',
          'tracing_headers = "{\\"x-api-key\\": \\"k\\"}"',
        ].join('\n'),
      );
      const applied = terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      expect(applied).not.toContain(token);
      expect(JSON.parse(terraform(dir, ['output', '-json', 'bindings']))).toEqual([
        'durable_object_namespace:STATE', 'plain_text:PROVIDERS', 'plain_text:CHALLENGE_TTL_SECONDS', 'plain_text:BODY_LIMIT_BYTES', 'plain_text:LOG_LEVEL', 'plain_text:CONFIG_REFRESH_SECONDS',
        'plain_text:RELEASE_CLUSTER', 'plain_text:RELEASE_API_SERVER', 'plain_text:RELEASE_CA_PEM', 'plain_text:RELEASE_TPM_SEAL', 'plain_text:TOKENREVIEW_AUDIENCES', 'plain_text:KMS_KIND', 'plain_text:AWS_KMS_KEY_ID', 'plain_text:AWS_REGION',
        'plain_text:OTEL_EXPORTER_OTLP_ENDPOINT', 'plain_text:TRACING_SAMPLE_RATIO',
        'secret_text:ADMIN_TOKEN', 'secret_text:TOKENREVIEW_BEARER_TOKEN', 'secret_text:AWS_ACCESS_KEY_ID', 'secret_text:AWS_SECRET_ACCESS_KEY', 'secret_text:TRACING_HEADERS',
      ]);
      const ran = JSON.parse(readFileSync(join(dir, 'ran.json'), 'utf8')) as { argv: string[]; token: string };
      expect(ran.token).toBe(token);
      expect(ran.argv).toEqual(['worker', 'load', '--url', 'https://attest.example.com', '--trust-dir', join(dir, 'trust'), '--policy', join(dir, "the cluster's policy.yaml"), '--require-ready', '--wait', '30']);

      // Refused at plan (the script's own preconditions went with it: checked statically above).
      for (const [extra, re] of [
        ['release = {\n  cluster = "prod"\n  api_server = "http://api.prod.example"\n  ca_pem = "-----BEGIN CERTIFICATE-----"\n}', /api_server an https:\/\/ URL/],
        ['release = {\n  cluster = "prod"\n  api_server = "https://api.prod.example"\n  ca_pem = "-----BEGIN CERTIFICATE-----"\n  tpm_seal = "always"\n}', /tpm_seal off, when-available or require/],
        ['kms = { kind = "aws-kms", aws_kms_key_id = "k" }', /aws-kms needs aws_kms_key_id and aws_region/],
        ['policy_file = "the cluster\'s policy.yaml"', /set admin_token/],
        ['admin_token = "short"', /admin_token must be empty or 32 to 4096/],
        ['kms = { kind = "vault" }', /kms: kind one of none/],
        ['tracing = { otlp_endpoint = "http://user:pw@collector:4318" }', /otlp_endpoint an http\(s\) URL without credentials/],
        ['tracing_headers = "not json"', /tracing_headers must be empty or a JSON object/],
      ] as const) {
        tfvars(extra);
        expect(refusal(dir).replace(/\s+/g, ' '), extra).toMatch(re);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tfIt('init -backend=false and validate every module that needs no external provider (needs terraform)', () => {
    for (const rel of PROVIDER_FREE) {
      const dir = mkdtempSync(join(tmpdir(), 'tf-validate-'));
      try {
        // Validate a copy, so no .terraform directory is left in the repository.
        execFileSync('cp', ['-r', `${join(TF, rel)}/.`, dir]);
        terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
        expect(terraform(dir, ['validate', '-no-color']), rel).toMatch(/Success! The configuration is valid/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  tfIt('broker-kubernetes config: rendered offline, accepted by the broker’s own schemas for each iam module’s kms block, and bad input refused (needs terraform)', () => {
    const kms = {
      aws: '{ kind = "aws-kms", keyId = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", region = "eu-west-1" }',
      gcp: '{ kind = "gcp-kms", keyName = "projects/p-123456/locations/europe-west1/keyRings/attest-prod/cryptoKeys/attest-prod-disk-keys", transport = "grpc" }',
      azure: '{ kind = "azure-keyvault", vaultUrl = "https://kv-attest.vault.azure.net", keyName = "attest-prod-disk-keys", keyVersion = "0123456789abcdef0123456789abcdef", credential = "workload-identity", clientId = "00000000-0000-0000-0000-000000000001" }',
    };
    for (const [cloud, block] of Object.entries(kms)) {
      const dir = mkdtempSync(join(tmpdir(), 'tf-cfg-'));
      const root = (extra: string): string =>
        `module "c" {\n  source = "${src(dir, 'modules/broker-kubernetes/modules/config')}"\n  providers_enabled = ["${cloud}"]\n  clusters = { prod = "https://10.0.0.1:6443" }\n  trusted_proxies = ["10.0.0.0/8"]\n  kms = ${block}\n${extra}}\noutput "y" { value = module.c.config_yaml }\n`;
      try {
        writeFileSync(join(dir, 'main.tf'), root(''));
        terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
        terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
        const text = terraform(dir, ['output', '-raw', 'y']);
        const doc = parseAllDocuments(text)[0]!.toJS() as Json;
        const cfg = ConfigSchema.parse(doc);
        expect(cfg.listen.tls).toEqual({ certFile: '/etc/attest-broker/tls/tls.crt', keyFile: '/etc/attest-broker/tls/tls.key' });
        expect(cfg.providers[cloud as 'aws']).toMatchObject({ enabled: true });
        const release = ReleaseConfigSchema.parse(cfg.release);
        expect(release.mode).toBe('secret');
        expect(release.clusters.prod).toMatchObject({ apiServer: 'https://10.0.0.1:6443', kube: { inCluster: true } });
        expect(release.kms?.kind).toBe(JSON.parse(`"${/kind = "([a-z-]+)"/.exec(block)![1]}"`));
        expect(release.approver.enabled).toBe(true);
        // Refused before anything is rendered.
        writeFileSync(join(dir, 'main.tf'), root('  log_level = "verbose"\n'));
        expect(refusal(dir)).toMatch(/log_level must be/);
        writeFileSync(join(dir, 'main.tf'), root('').replace('clusters = { prod', 'clusters = { Prod_1'));
        expect(refusal(dir)).toMatch(/clusters must map DNS-1123/);
        writeFileSync(join(dir, 'main.tf'), root('').replace('kind = "', 'kind = "x-'));
        expect(refusal(dir)).toMatch(/kms must be null or a release.kms block/);
        writeFileSync(join(dir, 'main.tf'), root('  store_url = "redis://:secret@redis:6379/0"\n'));
        expect(refusal(dir)).toMatch(/carry no password/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  tfIt('broker-kubernetes webhook mode: modules/webhook + modules/config as broker-kubernetes calls them; the broker built from that config authenticates the API server with the generated kubeconfig (needs terraform)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-wh-'));
    const pki = makeTestPki();
    const chain = `${pki.caPem.trim()}\n${pki.caPem.trim()}\n`; // leaf then CA: any two certificates will do here
    const token = 'W'.repeat(20) + 'x'.repeat(20);
    writeFileSync(join(dir, 'chain.pem'), chain);
    const root = (extra: string): string =>
      `module "w" {\n  source = "${src(dir, 'modules/broker-kubernetes/modules/webhook')}"\n  clusters = ["prod", "qa"]\n  server = "https://10.96.0.50:8444"\n  serving_chain_pem = file("chain.pem")\n  bearer_tokens = { prod = "${token}" }\n  client_common_names = { qa = ["kube-apiserver-qa"] }\n${extra}}\n` +
      `module "c" {\n  source = "${src(dir, 'modules/broker-kubernetes/modules/config')}"\n  providers_enabled = ["tpm"]\n  clusters = { prod = "https://10.0.0.1:6443", qa = "https://10.0.0.2:6443" }\n  release_mode = "webhook"\n  token_review = { port = 8444, client_ca = true, callers = module.w.callers, max_reviews_per_token = 16 }\n}\n` +
      `output "y" { value = module.c.config_yaml }\noutput "k" {\n  value = module.w.kubeconfigs\n  sensitive = true\n}\noutput "a" { value = module.w.kube_apiserver_args }\n`;
    try {
      writeFileSync(join(dir, 'main.tf'), root(''));
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
      const applied = terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      expect(applied).not.toContain(token);
      const cfg = ConfigSchema.parse(parseAllDocuments(terraform(dir, ['output', '-raw', 'y']))[0]!.toJS());
      const release = ReleaseConfigSchema.parse(cfg.release);
      expect(release.mode).toBe('webhook');
      expect(release.tokenReview.listen).toEqual({ host: '0.0.0.0', port: 8444, tls: { certFile: '/etc/attest-broker/webhook/tls.crt', keyFile: '/etc/attest-broker/webhook/tls.key', clientCaFile: '/etc/attest-broker/webhook/client-ca.crt' } });
      expect(release.tokenReview.callers.qa).toEqual({ clientCertificateCommonNames: ['kube-apiserver-qa'] });
      expect(JSON.stringify(cfg)).not.toContain(token);
      const kubeconfigs = JSON.parse(terraform(dir, ['output', '-json', 'k'])) as Record<string, string>;
      const prod = parseAllDocuments(kubeconfigs.prod!)[0]!.toJS() as Json;
      expect(prod.clusters[0].cluster.server).toBe('https://10.96.0.50:8444/v1/tokenreview');
      expect(Buffer.from(prod.clusters[0].cluster['certificate-authority-data'] as string, 'base64').toString('utf8').trim()).toBe(pki.caPem.trim());
      expect(prod.users[0].user).toEqual({ token });
      expect((parseAllDocuments(kubeconfigs.qa!)[0]!.toJS() as Json).users[0].user).toEqual({ 'client-certificate': '/etc/kubernetes/attest-broker/apiserver-client.crt', 'client-key': '/etc/kubernetes/attest-broker/apiserver-client.key' });
      expect(JSON.parse(terraform(dir, ['output', '-json', 'a'])).prod).toEqual(['--authentication-token-webhook-config-file=/etc/kubernetes/attest-broker/prod.kubeconfig', '--authentication-token-webhook-version=v1', '--authentication-token-webhook-cache-ttl=10s']);
      // The broker, built from that release section (webhook mode needs no Kubernetes access, so
      // the in-cluster `kube` is left out; the client CA file is the test CA), answers the API
      // server that presents the generated kubeconfig's token, and nobody else.
      const ca = join(dir, 'client-ca.crt');
      writeFileSync(ca, pki.caPem);
      const raw = parseAllDocuments(terraform(dir, ['output', '-raw', 'y']))[0]!.toJS() as Json;
      for (const c of Object.values(raw.release.clusters as Record<string, Json>)) delete c.kube;
      raw.release.tokenReview.listen.tls.clientCaFile = ca;
      const rt = await buildReleaseRuntime(raw.release, memoryStore(), captureLogger());
      try {
        const rel = (await rt.release.release({ claims: claimsFor('i-tf'), decision: decisionFor({ cluster: 'prod' }, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })) as ReleaseObject;
        const review = (bearer: string) =>
          rt.tokenReview!(
            new Request('https://b/v1/tokenreview', {
              method: 'POST',
              headers: { authorization: `Bearer ${bearer}` },
              body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: rel.bootstrapToken } }),
            }),
            {},
          );
        const ok = await review(prod.users[0].user.token as string);
        expect(((await ok.json()) as { status: { authenticated: boolean } }).status.authenticated).toBe(true);
        await expect(review('y'.repeat(40))).rejects.toMatchObject({ code: 'TOKENREVIEW_UNAUTHENTICATED' });
      } finally {
        await rt.close();
      }
      // Refused at plan.
      writeFileSync(join(dir, 'main.tf'), root('').replace('client_common_names = { qa = ["kube-apiserver-qa"] }', ''));
      expect(refusal(dir)).toMatch(/Every cluster needs a bearer token/);
      writeFileSync(join(dir, 'main.tf'), root('').replace(token, 'short'));
      expect(refusal(dir)).toMatch(/bearer_tokens must map cluster names to 32-256/);
      writeFileSync(join(dir, 'main.tf'), root('').replace('client_ca = true', 'client_ca = false'));
      expect(refusal(dir)).toMatch(/common names need client_ca = true/);
      writeFileSync(join(dir, 'main.tf'), root('').replace('token_review = {', 'token_review = null\n  x = {'));
      expect(refusal(dir)).toMatch(/Unsupported argument|needs token_review/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tfIt('broker-offcluster: EKS, GKE and AKS exec-credential kubeconfigs and config.yaml, read back by the broker’s own readers, and bad input refused (needs terraform)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-off-'));
    const pki = makeTestPki();
    writeFileSync(join(dir, 'ca.pem'), pki.caPem);
    const etc = join(dir, 'etc');
    const root = (extra = '', cluster = ''): string =>
      `module "o" {\n  source = "${src(dir, 'modules/broker-offcluster')}"\n  config_dir = "${etc}"\n  providers_enabled = ["aws", "gcp", "azure"]\n  kms = { kind = "aws-kms", keyId = "alias/attest", region = "eu-west-1" }\n${extra}  clusters = {\n` +
      `    eks = { api_server = "https://api.eks.example", ca_pem = file("ca.pem"), platform = "eks", eks = { cluster_name = "prod", region = "eu-west-1", profile = "attest-broker", role_arn = "arn:aws:iam::111122223333:role/attest-broker" }, rbac_subject = { kind = "User", name = "attest-broker" } }\n` +
      `    gke = { api_server = "https://10.1.0.2", ca_pem = file("ca.pem"), platform = "gke", rbac_subject = { kind = "User", name = "broker@p-1.iam.gserviceaccount.com" } }\n` +
      `    aks = { api_server = "https://aks.example:443", endpoint = "https://aks-private.example:443", ca_pem = file("ca.pem"), platform = "aks", aks = { login = "msi", client_id = "00000000-0000-0000-0000-000000000001" }, env = { AZURE_FEDERATED_TOKEN_FILE = "/var/run/token" }, rbac_subject = { kind = "Group", name = "00000000-0000-0000-0000-000000000002" } }\n${cluster}  }\n}\n` +
      `output "files" { value = module.o.files }\noutput "subjects" { value = module.o.rbac_subjects }\n`;
    try {
      writeFileSync(join(dir, 'main.tf'), root(`  policy_yaml = "apiVersion: attest-broker/v1\\nkind: JoinPolicy\\n"\n`));
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
      terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      const files = JSON.parse(terraform(dir, ['output', '-json', 'files'])) as Record<string, string>;
      expect(Object.keys(files).sort()).toEqual([`${etc}/config.yaml`, `${etc}/kube/aks.kubeconfig`, `${etc}/kube/eks.kubeconfig`, `${etc}/kube/gke.kubeconfig`, `${etc}/policy.yaml`]);
      for (const [p, text] of Object.entries(files)) {
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, text);
      }
      const cfg = ConfigSchema.parse(parseAllDocuments(files[`${etc}/config.yaml`]!)[0]!.toJS());
      expect(cfg.policy.file).toBe(`${etc}/policy.yaml`);
      const release = ReleaseConfigSchema.parse(cfg.release);
      expect(release.mode).toBe('secret');
      expect(release.clusters.aks).toEqual({ apiServer: 'https://aks.example:443', kube: { inCluster: false, kubeconfig: `${etc}/kube/aks.kubeconfig` } });
      // Each kubeconfig through the broker's kubeconfig reader (exec: its checks of apiVersion,
      // interactiveMode, …), and the plugin's command line as the broker would run it.
      const exec = (name: string) => {
        const access = kubeconfigAccess(`${etc}/kube/${name}.kubeconfig`);
        expect(access.exec, name).toBeDefined();
        expect(access.caPem.trim()).toBe(pki.caPem.trim());
        const doc = parseAllDocuments(files[`${etc}/kube/${name}.kubeconfig`]!)[0]!.toJS() as Json;
        return { server: access.server, ...parseExecConfig(doc.users[0].user.exec, name, `${etc}/kube`) };
      };
      expect(exec('eks')).toMatchObject({ command: 'aws', args: ['--region', 'eu-west-1', 'eks', 'get-token', '--cluster-name', 'prod', '--output', 'json', '--role-arn', 'arn:aws:iam::111122223333:role/attest-broker'], env: [{ name: 'AWS_PROFILE', value: 'attest-broker' }], interactiveMode: 'Never' });
      expect(exec('gke')).toMatchObject({ command: 'gke-gcloud-auth-plugin', args: [], provideClusterInfo: true, interactiveMode: 'Never' });
      expect(exec('aks')).toMatchObject({ server: 'https://aks-private.example:443', command: 'kubelogin', args: ['get-token', '--login', 'msi', '--server-id', '6dae42f8-4368-4678-94ff-3960e28e3630', '--client-id', '00000000-0000-0000-0000-000000000001'] });
      // The broker builds its release section from it (nothing is called yet: the plugins run on first use).
      const rt = await buildReleaseRuntime(release, memoryStore(), captureLogger());
      await rt.close();
      expect(JSON.parse(terraform(dir, ['output', '-json', 'subjects']))).toEqual({
        eks: { kind: 'User', name: 'attest-broker', namespace: '' },
        gke: { kind: 'User', name: 'broker@p-1.iam.gserviceaccount.com', namespace: '' },
        aks: { kind: 'Group', name: '00000000-0000-0000-0000-000000000002', namespace: '' },
      });
      // Refused at plan.
      for (const [cluster, re] of [
        ['    x = { api_server = "https://x", ca_pem = file("ca.pem"), platform = "aks", aks = { login = "devicecode" }, rbac_subject = { kind = "User", name = "u" } }\n', /never devicecode or interactive/],
        ['    x = { api_server = "https://x", ca_pem = file("ca.pem"), platform = "eks", rbac_subject = { kind = "User", name = "u" } }\n', /platform must be eks \(with eks/],
        ['    x = { api_server = "https://x", ca_pem = file("ca.pem"), platform = "gke", env = { AAD_SERVICE_PRINCIPAL_CLIENT_SECRET = "s" }, rbac_subject = { kind = "User", name = "u" } }\n', /no secrets/],
        ['    x = { api_server = "https://x", ca_pem = file("ca.pem"), platform = "gke", rbac_subject = { kind = "ServiceAccount", name = "u" } }\n', /rbac_subject must be \{kind = User or Group/],
        ['    x = { api_server = "http://x", ca_pem = file("ca.pem"), platform = "gke", rbac_subject = { kind = "User", name = "u" } }\n', /are https:\/\/ URLs/],
      ] as const) {
        writeFileSync(join(dir, 'main.tf'), root('', cluster));
        expect(refusal(dir), cluster).toMatch(re);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tfIt('user-data multipart: MIME parts in order, the kubeadm hook merged by list append, each cloud-config part valid; works from an absolute source path (needs terraform)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-ud-'));
    try {
      // An absolute source: Terraform copies the module into .terraform/modules (what broke before).
      writeFileSync(
        join(dir, 'main.tf'),
        `module "ud" {\n  source = "${join(TF, 'modules/user-data')}"\n  broker_url = "https://broker.prod.internal"\n  ca_pin = "sha256:${'ab'.repeat(32)}"\n  cluster = "prod"\n  platform = "aws"\n  kubeadm_join = true\n  extra_parts = [{ content_type = "application/node.eks.aws", content = "apiVersion: node.eks.aws/v1alpha1\\nkind: NodeConfig\\n" }]\n}\noutput "mp" { value = module.ud.user_data_multipart }\noutput "cc" { value = module.ud.user_data }\n`,
      );
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false']);
      terraform(dir, ['apply', '-auto-approve', '-input=false', '-no-color']);
      const mp = terraform(dir, ['output', '-raw', 'mp']);
      const cc = terraform(dir, ['output', '-raw', 'cc']);
      const boundary = /boundary="([^"]+)"/.exec(mp)![1]!;
      expect(mp.trimEnd().endsWith(`--${boundary}--`)).toBe(true);
      const parts = mp
        .split(`--${boundary}`)
        .slice(1, -1)
        .map((p) => {
          const [head, ...body] = p.replace(/^\n/, '').split('\n\n');
          const headers = Object.fromEntries(head!.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
          const raw = body.join('\n\n').replace(/\n$/, '');
          const content = headers['content-transfer-encoding'] === 'base64' ? Buffer.from(raw.replace(/\n/g, ''), 'base64').toString('utf8') : raw;
          return { headers, content };
        });
      expect(parts.map((p) => p.headers['content-type'])).toEqual(['text/cloud-config; charset="utf-8"', 'text/cloud-config; charset="utf-8"', 'application/node.eks.aws; charset="utf-8"']);
      expect(parts[0]!.content).toBe(cc);
      expect(parts[1]!.headers['merge-type']).toBe('list(append)+dict(no_replace,recurse_list)+str()');
      expect(parts[1]!.content).toContain('--kubeadm-config-out /run/attest-join/kubeadm-join.yaml');
      expect(parts[1]!.content).toContain('Requires=attest-join.service');
      // Lines stay within RFC 5322's 998 characters; base64 lines within MIME's 76.
      for (const l of mp.split('\n')) expect(l.length).toBeLessThanOrEqual(998);
      const b64 = mp.split(`--${boundary}`)[1]!.split('\n\n')[1]!.trim().split('\n');
      for (const l of b64) expect(l.length).toBeLessThanOrEqual(76);
      if (HAVE_CLOUD_INIT) {
        for (const [i, p] of parts.slice(0, 2).entries()) {
          const f = join(dir, `part-${i}.yaml`);
          writeFileSync(f, p.content);
          expect(execFileSync('cloud-init', ['schema', '--config-file', f], { encoding: 'utf8' })).toMatch(/Valid cloud-config/);
        }
      }
      // Validation refuses a part that could break the MIME framing.
      writeFileSync(join(dir, 'main.tf'), readFileSync(join(dir, 'main.tf'), 'utf8').replace('kind: NodeConfig', 'kind: NodeConfig ==ATTEST-BROKER-PART=='));
      expect(refusal(dir)).toMatch(/must not contain the MIME boundary/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tfIt('the examples’ policy templates render into policies the broker accepts (needs terraform)', async () => {
    const sha384 = 'ab'.repeat(48);
    const cases: Record<string, string> = {
      aws: `{ cluster = "prod", version = "1", regions = ["eu-west-1"], image_name = "node-image", pcrs = { "4" = "${sha384}", "7" = "${sha384}" } }`,
      gcp: `{ cluster = "prod", version = "1", projects = ["p-123456"], zones = ["europe-west1-b"], instance_names = ["prod-node-*"], image_name = "node-image", pcrs = { "0" = "${'cd'.repeat(32)}" } }`,
      azure: `{ cluster = "prod", version = "1", image_name = "cvm-node-image", measurements = ["${sha384}"] }`,
    };
    for (const [cloud, vars] of Object.entries(cases)) {
      const r = applyRoot(`output "p" { value = templatefile("${join(TF, 'examples', cloud, 'policy.yaml.tftpl')}", ${vars}) }\n`);
      try {
        const text = r.out('p');
        const checked = await checkPolicyText(text, new Date());
        expect(checked.issues.filter((i) => i.severity === 'error'), cloud).toEqual([]);
        expect(checked.policy, cloud).toBeDefined();
      } finally {
        r.done();
      }
    }
  });

  tfIt('Terraform cannot hash DER: base64decode refuses a certificate, so ca_pin is an input (needs terraform)', () => {
    // The body of a PEM certificate is base64 of DER, which is not UTF-8; Terraform strings must be.
    const der = makeTestPki()
      .caPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, '');
    const r = applyRoot(`output "x" { value = sha256(base64decode("${der}")) }\n`);
    try {
      expect(() => r.out('x')).toThrow(/UTF-8/);
    } finally {
      r.done();
    }
  });

  const mirrorEnv = (dir: string): NodeJS.ProcessEnv => {
    const rc = join(dir, '.terraformrc');
    writeFileSync(rc, `provider_installation {\n  filesystem_mirror {\n    path    = "${MIRROR}"\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n`);
    return { ...TF_ENV, TF_CLI_CONFIG_FILE: rc };
  };

  (HAVE_AWS_MIRROR ? it : it.skip)('iam-aws plans offline against the mirrored aws provider: the PCR and context conditions in the key policy, the IRSA or Pod Identity trust, and the preconditions (needs terraform and a local aws provider mirror)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-aws-plan-'));
    const env = mirrorEnv(dir);
    const pcr4 = 'ab'.repeat(48);
    const pcr7 = 'cd'.repeat(48);
    // Dummy credentials and every skip: planning creations reads nothing from AWS
    // (aws_iam_policy_document is computed locally).
    const root = (identity: string): string =>
      `provider "aws" {\n  region = "eu-west-1"\n  access_key = "AKIAEXAMPLEEXAMPLE00"\n  secret_key = "example"\n  skip_credentials_validation = true\n  skip_requesting_account_id = true\n  skip_metadata_api_check = true\n  skip_region_validation = true\n}\n` +
      `module "iam" {\n  source = "${src(dir, 'modules/iam-aws')}"\n  name = "attest-broker-prod"\n  clusters = ["prod", "prod-2"]\n  key_admin_arns = ["arn:aws:iam::111122223333:role/kms-admin"]\n  nitrotpm_pcrs = { "4" = "${pcr4}", "7" = "${pcr7}" }\n${identity}}\n` +
      `output "sa" { value = module.iam.service_account_annotations }\n`;
    const plan = (): Json => {
      terraform(dir, ['plan', '-input=false', '-no-color', '-out=plan.bin'], env);
      return JSON.parse(execFileSync('terraform', ['show', '-json', 'plan.bin'], { cwd: dir, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as Json;
    };
    const change = (p: Json, address: string): Json => (p.resource_changes as Json[]).find((r) => r.address === address)!.change as Json;
    try {
      writeFileSync(join(dir, 'main.tf'), root('  identity_mode = "irsa"\n  oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/prod"\n'));
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false'], env);
      const irsa = plan();
      const creates = (irsa.resource_changes as Json[]).filter((r) => (r.change.actions as string[]).includes('create')).map((r) => r.address as string);
      expect(creates.sort()).toEqual(['module.iam.aws_iam_role.broker', 'module.iam.aws_kms_alias.disk', 'module.iam.aws_kms_key.disk']);
      expect(change(irsa, 'module.iam.aws_kms_key.disk').after).toMatchObject({ key_usage: 'ENCRYPT_DECRYPT', customer_master_key_spec: 'SYMMETRIC_DEFAULT', enable_key_rotation: true, deletion_window_in_days: 30 });
      const trust = JSON.parse(change(irsa, 'module.iam.aws_iam_role.broker').after.assume_role_policy as string) as Json;
      expect(trust.Statement).toEqual([
        {
          Sid: 'IrsaWebIdentity',
          Effect: 'Allow',
          Action: 'sts:AssumeRoleWithWebIdentity',
          Principal: { Federated: 'arn:aws:iam::111122223333:oidc-provider/oidc.example.com/prod' },
          Condition: { StringEquals: { 'oidc.example.com/prod:aud': 'sts.amazonaws.com', 'oidc.example.com/prod:sub': 'system:serviceaccount:attest-broker:attest-broker' } },
        },
      ]);
      // The key policy document: its principals name the role (unknown until apply), its
      // conditions are known at plan time.
      const statements = change(irsa, 'module.iam.data.aws_iam_policy_document.key').after.statement as Json[];
      expect(statements.map((st) => st.sid)).toEqual(['KeyAdministrationNoUse', 'BrokerWrapsDiskKeysOfItsClusters', 'KeysOnlyToAttestedNitroTPM']);
      const admin = statements[0]!;
      // Admins cannot use the key, nor grant themselves its use (a grant carries no PCR condition).
      expect((admin.actions as string[]).filter((a) => /Encrypt|Decrypt|GenerateDataKey|ReEncrypt|Grant|^kms:\*$|^kms:Create\*$/.test(a))).toEqual([]);
      const cond = (st: Json): Record<string, [string, string[]]> => Object.fromEntries((st.condition as Json[]).map((c) => [c.variable as string, [c.test as string, c.values as string[]]]));
      expect(cond(statements[2]!)).toEqual({
        'kms:RecipientAttestation:NitroTPMPCR4': ['StringEqualsIgnoreCase', [pcr4]],
        'kms:RecipientAttestation:NitroTPMPCR7': ['StringEqualsIgnoreCase', [pcr7]],
        'kms:EncryptionContext:attest-broker:purpose': ['StringEquals', ['disk-key']],
        'kms:EncryptionContext:attest-broker:cluster': ['StringEquals', ['prod', 'prod-2']],
      });
      expect(statements[2]!.actions).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(cond(statements[1]!)).toEqual({ 'kms:EncryptionContext:attest-broker:purpose': ['StringEquals', ['disk-key']], 'kms:EncryptionContext:attest-broker:cluster': ['StringEquals', ['prod', 'prod-2']] });
      expect(statements[1]!.actions).toEqual(['kms:DescribeKey', 'kms:Encrypt']);

      writeFileSync(join(dir, 'main.tf'), root('  identity_mode = "pod-identity"\n  eks_cluster_name = "prod"\n'));
      const pod = plan();
      expect(change(pod, 'module.iam.aws_eks_pod_identity_association.broker[0]').after).toMatchObject({ cluster_name: 'prod', namespace: 'attest-broker', service_account: 'attest-broker' });
      const podTrust = JSON.parse(change(pod, 'module.iam.aws_iam_role.broker').after.assume_role_policy as string) as Json;
      expect(podTrust.Statement).toEqual([{ Sid: 'EksPodIdentity', Effect: 'Allow', Action: ['sts:TagSession', 'sts:AssumeRole'], Principal: { Service: 'pods.eks.amazonaws.com' } }]);
      expect((pod.planned_values as Json).outputs.sa.value).toEqual({});

      writeFileSync(join(dir, 'main.tf'), root('  identity_mode = "irsa"\n'));
      expect(refusal(dir, env)).toMatch(/identity_mode = irsa needs oidc_provider_arn/);
      writeFileSync(join(dir, 'main.tf'), root('  identity_mode = "irsa"\n  oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/x"\n').replace(`"7" = "${pcr7}"`, '"7" = "ABC"'));
      expect(refusal(dir, env)).toMatch(/nitrotpm_pcrs must map PCR indexes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  (HAVE_AWS_MIRROR ? it : it.skip)('iam-aws validates against a locally mirrored hashicorp/aws, and the schema table agrees with its schema (needs terraform and a local aws provider mirror)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-aws-'));
    const env = mirrorEnv(dir);
    try {
      execFileSync('cp', ['-r', `${join(TF, 'modules/iam-aws')}/.`, dir]);
      terraform(dir, ['init', '-input=false', '-no-color', '-backend=false'], env);
      expect(terraform(dir, ['validate', '-no-color'], env)).toMatch(/Success!/);
      const schema = JSON.parse(execFileSync('terraform', ['providers', 'schema', '-json'], { cwd: dir, env, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 })) as Json;
      const aws = schema.provider_schemas['registry.terraform.io/hashicorp/aws'] as Json;
      for (const [type, entry] of Object.entries(SCHEMA)) {
        if (!/^(data\.)?aws_/.test(type)) continue;
        const s = type.startsWith('data.') ? aws.data_source_schemas[type.slice(5)] : aws.resource_schemas[type];
        expect(s, type).toBeDefined();
        const known = new Set([...Object.keys((s.block.attributes ?? {}) as Json), ...Object.keys((s.block.block_types ?? {}) as Json)]);
        for (const a of entry.args) expect(known.has(a), `${type}.${a}`).toBe(true);
        for (const [a, spec] of Object.entries((s.block.attributes ?? {}) as Record<string, Json>)) if (spec.required) expect(entry.required ?? [], `${type} requires ${a}`).toContain(a);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

