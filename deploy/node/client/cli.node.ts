/**
 * @module deploy/node/client/cli.node
 *
 * Command-line surface of the join client, shared by `attest-broker join` (registered from
 * `broker/commands/join.node.ts`) and the single-file `attest-join` bundle
 * (`deploy/node/client/main.node.ts`). Exit statuses: see `codes.ts`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { AttestError } from '../../../providers/common/errors.js';
import { exitStatusFor, JoinCodes, joinError } from './codes.js';
import { join } from './join.node.js';
import { parseDuration } from './retry.js';
import { PLATFORMS, type Platform } from './evidence.node.js';

export const DEFAULT_KUBECONFIG = '/var/lib/kubelet/bootstrap-kubeconfig';

interface Flags {
  broker: string;
  caPin: string;
  cluster: string;
  platform: Platform | 'auto';
  out: string;
  diskKeyOut?: string;
  diskKeyOnly?: boolean;
  diskKeyWrapped?: string;
  kubeletConfigOut?: string;
  kubeadmConfigOut?: string;
  nodeNameOut?: string;
  deadline: number;
  eventLog?: string | false;
  gpuEvidenceCmd?: string;
}

/** Adds the join options and action to `cmd` (a subcommand, or a standalone program). */
export function configureJoinCommand(cmd: Command): Command {
  return cmd
    .description('Prove this node\'s boot to the attest-broker and receive its bootstrap kubeconfig (and disk key).')
    .requiredOption('--broker <url>', 'broker base URL (https://…)')
    .requiredOption('--ca-pin <sha256:hex>', "SHA-256 of the broker CA's SubjectPublicKeyInfo (kubeadm-style)")
    .requiredOption('--cluster <name>', 'cluster name the broker admits this node to')
    .addOption(new Option('--platform <platform>', 'evidence source').choices(['auto', ...PLATFORMS]).default('auto'))
    .option('--out <file>', 'where to write the bootstrap kubeconfig (mode 0600)', DEFAULT_KUBECONFIG)
    .option('--disk-key-out <file>', 'also ask for the disk key and write its raw bytes here (mode 0600; use tmpfs, e.g. /run/attest-join/disk.key)')
    .option('--disk-key-only', 'ask for the disk key alone (every boot after the first join): no token, no kubeconfig; needs --disk-key-out')
    .option('--disk-key-wrapped <file>', 'keep the wrapped disk key here between boots (default: <disk-key-out>.wrapped)')
    .option('--kubelet-config-out <file>', "write a KubeletConfiguration drop-in (rotateCertificates, serverTLSBootstrap) for the kubelet's --config-dir; must end in .conf (mode 0600)")
    .option('--kubeadm-config-out <file>', 'write a kubeadm v1beta4 JoinConfiguration (file discovery with --out, the token for TLS bootstrap, the released node name) for `kubeadm join --config` (mode 0600)')
    .option('--node-name-out <file>', 'write the released node name and a newline (for the kubelet\'s --hostname-override; mode 0600)')
    .addOption(
      new Option('--deadline <duration>', 'give up after this long (e.g. 300s, 5m)')
        .argParser((v: string) => {
          try {
            return parseDuration(v);
          } catch (e) {
            throw new InvalidArgumentError((e as Error).message);
          }
        })
        .default(300_000, '300s'),
    )
    .option('--event-log <file>', 'TCG event log to send (default: /sys/kernel/security/tpm0/binary_bios_measurements when present)')
    .option('--no-event-log', 'send no event log')
    .option(
      '--gpu-evidence-cmd <path>',
      'attach GPU evidence: run this executable (absolute path) with the binding as 64 hex digits (argument and ATTEST_GPU_NONCE); its stdout, the nvtrust evidence JSON array, goes into the attest request (env ATTEST_GPU_EVIDENCE_CMD)',
    )
    .action(async (flags: Flags) => {
      try {
        const env = process.env;
        const gcpTee = env.ATTEST_GCP_TEE || 'auto';
        if (gcpTee !== 'auto' && gcpTee !== 'none') throw joinError(JoinCodes.USAGE, 'ATTEST_GCP_TEE must be auto or none');
        const r = await join({
          broker: flags.broker,
          caPin: flags.caPin,
          cluster: flags.cluster,
          platform: flags.platform,
          out: flags.out,
          deadlineMs: flags.deadline,
          ...(flags.diskKeyOut ? { diskKeyOut: flags.diskKeyOut } : {}),
          ...(flags.diskKeyOnly ? { diskKeyOnly: true } : {}),
          ...(flags.diskKeyWrapped ? { diskKeyWrappedPath: flags.diskKeyWrapped } : {}),
          ...(flags.kubeletConfigOut ? { kubeletConfigOut: flags.kubeletConfigOut } : {}),
          ...(flags.kubeadmConfigOut ? { kubeadmConfigOut: flags.kubeadmConfigOut } : {}),
          ...(flags.nodeNameOut ? { nodeNameOut: flags.nodeNameOut } : {}),
          ...(flags.eventLog === false ? { eventLogPath: '' } : flags.eventLog ? { eventLogPath: flags.eventLog } : {}),
          ...(env.ATTEST_TSM_REPORT_DIR ? { tsmReportDir: env.ATTEST_TSM_REPORT_DIR } : {}),
          ...(env.ATTEST_TEE_DEV_DIR ? { teeDevDir: env.ATTEST_TEE_DEV_DIR } : {}),
          ...(env.ATTEST_CPUINFO ? { cpuinfoPath: env.ATTEST_CPUINFO } : {}),
          gcpTee,
          ...((flags.gpuEvidenceCmd ?? env.ATTEST_GPU_EVIDENCE_CMD) ? { gpuEvidenceCmd: (flags.gpuEvidenceCmd ?? env.ATTEST_GPU_EVIDENCE_CMD) as string } : {}),
        });
        process.stdout.write(JSON.stringify({ ok: true, ...r }) + '\n');
      } catch (e) {
        const code = e instanceof AttestError ? e.code : 'JOIN_INTERNAL';
        const brokerCode = e instanceof AttestError ? (e.detail?.brokerCode as string | undefined) : undefined;
        process.stderr.write(`attest-join: error ${code}${brokerCode ? ` (broker: ${brokerCode})` : ''}: ${(e as Error).message}\n`);
        process.stdout.write(JSON.stringify({ ok: false, code, ...(brokerCode ? { brokerCode } : {}) }) + '\n');
        process.exitCode = exitStatusFor(e);
      }
    });
}
