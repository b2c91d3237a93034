/**
 * @module deploy/node/client/files.node
 *
 * Writes secrets to disk atomically and privately. The kubelet must never see a half-written
 * bootstrap kubeconfig, and the token or disk key must never be readable by others, not even
 * for an instant:
 * - the temporary file is created in the target's directory (same filesystem, so rename is
 *   atomic — POSIX rename(2)) with O_CREAT|O_EXCL and mode 0600 from the start;
 * - data is fsync'd before the rename and the directory after it, so a crash leaves either
 *   the old state or the complete new file;
 * - the final mode is re-asserted with fchmod (a umask cannot widen 0600, but a pre-existing
 *   file's ACL defaults can't sneak in either: the inode is new).
 */
import { open, rename, unlink, mkdir, chmod } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { JoinCodes, joinError } from './codes.js';

export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await chmod(path, mode);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (cause) {
    await unlink(tmp).catch(() => undefined);
    throw joinError(JoinCodes.WRITE_FAILED, `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}
