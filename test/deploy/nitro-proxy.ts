/**
 * A stand-in for the NitroTPM between tpm2-tools and swtpm (tests only).
 *
 * What is simulated, said plainly: swtpm knows nothing of AWS's NSM vendor command
 * (TPM2_CC 0x20000001) and caps NV indices at 2 KiB (libtpms MAX_NV_INDEX_SIZE), while the
 * NitroTPM's message buffer is 8 KiB. So this proxy, listening where the swtpm TCTI expects a
 * TPM (a command port Q and a control port Q+1, the latter piped to swtpm's):
 * - keeps the NV indices the clients define in 0x01000000..0x0100003f itself (NV_DefineSpace,
 *   NV_UndefineSpace, NV_ReadPublic, NV_Write, NV_Read of those handles, with their passwords
 *   checked), as the NitroTPM would hold them;
 * - answers the vendor command for such an index, authorized by its password, the way the Nitro
 *   hypervisor does: it reads the NSM request from the buffer and writes the NSM's answer
 *   (`respond`, which signs a document under a test Nitro chain) into it from offset 0;
 * - forwards every other command to swtpm unchanged (and, in `forward` mode, the vendor command
 *   too: swtpm then answers TPM_RC_COMMAND_CODE, as a TPM that is not a NitroTPM would).
 * The Nitro hypervisor's signature is the simulated link; the command bytes, the NV exchange and
 * both clients' parsing are real.
 */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { decodeFirst } from 'cborg';

const CC_NV_UNDEFINE = 0x122;
const CC_NV_DEFINE = 0x12a;
const CC_NV_WRITE = 0x137;
const CC_NV_READ = 0x14e;
const CC_NV_READ_PUBLIC = 0x169;
const CC_VENDOR_NSM = 0x20000001;
const RC_SUCCESS = 0;
const RC_NV_RANGE = 0x146;
const RC_NV_DEFINED = 0x14c;
const RC_AUTH_FAIL = 0x98e;
const RC_HANDLE = 0x18b;
const TPMA_NV_WRITTEN = 0x20000000;

export interface NsmRequest {
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
}

/**
 * How the proxy answers the vendor command:
 * - `nsm`: the NSM's answer from `respond` (CBOR bytes) into the buffer, TPM success;
 * - `tpm`: these raw bytes as the TPM response, buffer untouched (garbled frames); with `close`,
 *   the connection is closed after them (a frame cut short: the reader sees the transport end);
 * - `forward`: the command goes to swtpm.
 */
export type VendorAnswer = { nsm: Uint8Array } | { tpm: Uint8Array; close?: boolean } | 'forward';

interface NvIndex {
  nameAlg: number;
  attrs: number;
  policy: Uint8Array;
  auth: Uint8Array;
  data: Uint8Array;
}

export interface NitroProxy {
  /** TPM2TOOLS_TCTI for the clients. */
  tcti: string;
  env: NodeJS.ProcessEnv;
  /** The NSM requests the vendor command carried, in order. */
  requests: NsmRequest[];
  /** Indices still defined (the clients must undefine theirs). */
  defined(): number[];
  close(): Promise<void>;
}

const listen = (port: number): Promise<Server | undefined> =>
  new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function frame(tag: number, rc: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([u16(tag), u32(10 + body.length), u32(rc), body]);
}
const error = (rc: number): Buffer => frame(0x8001, rc);
/** Sessions response: parameterSize, parameters, one password acknowledgement. */
const withSession = (params: Buffer = Buffer.alloc(0)): Buffer => frame(0x8002, RC_SUCCESS, Buffer.concat([u32(params.length), params, u16(0), Buffer.of(0x01), u16(0)]));

/** The command's one password authorization (handles counted by the caller). */
function password(cmd: Buffer, handles: number): { pw: Buffer; params: number } {
  const at = 10 + 4 * handles;
  const authSize = cmd.readUInt32BE(at);
  const s = at + 4;
  const nonceLen = cmd.readUInt16BE(s + 4);
  const hmacAt = s + 4 + 2 + nonceLen + 1;
  const pwLen = cmd.readUInt16BE(hmacAt);
  return { pw: cmd.subarray(hmacAt + 2, hmacAt + 2 + pwLen), params: at + 4 + authSize };
}

function nvPublic(h: number, nv: NvIndex): Buffer {
  return Buffer.concat([u32(h), u16(nv.nameAlg), u32(nv.attrs), u16(nv.policy.length), nv.policy, u16(nv.data.length)]);
}

export async function startNitroProxy(swtpmPort: number, vendor: (req: NsmRequest) => VendorAnswer | Promise<VendorAnswer>): Promise<NitroProxy> {
  let cmdSrv: Server | undefined;
  let ctlSrv: Server | undefined;
  for (let i = 0; i < 50 && !ctlSrv; i++) {
    cmdSrv = await listen(0);
    if (!cmdSrv) continue;
    const q = (cmdSrv.address() as AddressInfo).port;
    ctlSrv = q < 65535 ? await listen(q + 1) : undefined;
    if (!ctlSrv) await new Promise<void>((r) => cmdSrv!.close(() => r()));
  }
  if (!cmdSrv || !ctlSrv) throw new Error('no free port pair for the NitroTPM proxy');
  const port = (cmdSrv.address() as AddressInfo).port;
  const sockets = new Set<Socket>();
  const track = (s: Socket): Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  };
  const nv = new Map<number, NvIndex>();
  const requests: NsmRequest[] = [];
  const ours = (h: number): boolean => h >= 0x01000000 && h < 0x01000040;

  // Control channel: a plain pipe to swtpm's.
  ctlSrv.on('connection', (c) => {
    track(c);
    const up = track(connect({ host: '127.0.0.1', port: swtpmPort + 1 }));
    c.pipe(up);
    up.pipe(c);
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });

  cmdSrv.on('connection', (c) => {
    track(c);
    const up = track(connect({ host: '127.0.0.1', port: swtpmPort }));
    let upBuf = Buffer.alloc(0);
    let upWaiter: ((b: Buffer) => void) | undefined;
    up.on('data', (d: Buffer) => {
      upBuf = Buffer.concat([upBuf, d]);
      if (upBuf.length >= 6 && upBuf.length >= upBuf.readUInt32BE(2) && upWaiter) {
        const n = upBuf.readUInt32BE(2);
        const r = upBuf.subarray(0, n);
        upBuf = upBuf.subarray(n);
        const w = upWaiter;
        upWaiter = undefined;
        w(r);
      }
    });
    const forward = (cmd: Buffer): Promise<Buffer> =>
      new Promise((resolve) => {
        upWaiter = resolve;
        up.write(cmd);
      });
    c.on('close', () => up.destroy());

    const handle = async (cmd: Buffer): Promise<Buffer> => {
      const cc = cmd.readUInt32BE(6);
      switch (cc) {
        case CC_NV_DEFINE: {
          const { params } = password(cmd, 1);
          let at = params;
          const authLen = cmd.readUInt16BE(at);
          const auth = Buffer.from(cmd.subarray(at + 2, at + 2 + authLen));
          at += 2 + authLen + 2; // TPM2B_NV_PUBLIC size
          const h = cmd.readUInt32BE(at);
          if (!ours(h)) return forward(cmd);
          if (nv.has(h)) return error(RC_NV_DEFINED);
          const nameAlg = cmd.readUInt16BE(at + 4);
          const attrs = cmd.readUInt32BE(at + 6);
          const pl = cmd.readUInt16BE(at + 10);
          const policy = Buffer.from(cmd.subarray(at + 12, at + 12 + pl));
          const size = cmd.readUInt16BE(at + 12 + pl);
          nv.set(h, { nameAlg, attrs, policy, auth, data: new Uint8Array(size) });
          return withSession();
        }
        case CC_NV_UNDEFINE: {
          const h = cmd.readUInt32BE(14);
          if (!ours(h)) return forward(cmd);
          if (!nv.delete(h)) return error(RC_HANDLE);
          return withSession();
        }
        case CC_NV_READ_PUBLIC: {
          const h = cmd.readUInt32BE(10);
          if (!ours(h)) return forward(cmd);
          const x = nv.get(h);
          if (!x) return error(RC_HANDLE);
          const pub = nvPublic(h, x);
          const { createHash } = await import('node:crypto');
          const name = Buffer.concat([u16(x.nameAlg), createHash('sha256').update(pub).digest()]);
          return frame(0x8001, RC_SUCCESS, Buffer.concat([u16(pub.length), pub, u16(name.length), name]));
        }
        case CC_NV_WRITE:
        case CC_NV_READ:
        case CC_VENDOR_NSM: {
          const h = cmd.readUInt32BE(14);
          if (!ours(h) || (cc === CC_VENDOR_NSM && !nv.has(h))) return cc === CC_VENDOR_NSM ? forward(cmd) : ours(h) ? error(RC_HANDLE) : forward(cmd);
          const x = nv.get(h);
          if (!x) return error(RC_HANDLE);
          const { pw, params } = password(cmd, 2);
          if (!Buffer.from(pw).equals(Buffer.from(x.auth))) return error(RC_AUTH_FAIL);
          if (cc === CC_NV_WRITE) {
            const len = cmd.readUInt16BE(params);
            const data = cmd.subarray(params + 2, params + 2 + len);
            const off = cmd.readUInt16BE(params + 2 + len);
            if (off + len > x.data.length) return error(RC_NV_RANGE);
            x.data.set(data, off);
            x.attrs |= TPMA_NV_WRITTEN;
            return withSession();
          }
          if (cc === CC_NV_READ) {
            const len = cmd.readUInt16BE(params);
            const off = cmd.readUInt16BE(params + 2);
            if (off + len > x.data.length) return error(RC_NV_RANGE);
            return withSession(Buffer.concat([u16(len), Buffer.from(x.data.subarray(off, off + len))]));
          }
          // The vendor command: the NSM reads one CBOR item from the buffer.
          const [req] = decodeFirst(x.data, { useMaps: true }) as [unknown, Uint8Array];
          const inner = req instanceof Map ? (req.get('Attestation') as Map<string, Uint8Array | null> | undefined) : undefined;
          if (!inner || [...inner.keys()].join(',') !== 'user_data,nonce,public_key') throw new Error('proxy: not an NSM Attestation request');
          const r: NsmRequest = { userData: inner.get('user_data') ?? null, nonce: inner.get('nonce') ?? null, publicKey: inner.get('public_key') ?? null };
          requests.push(r);
          const a = await vendor(r);
          if (a === 'forward') return forward(cmd);
          if ('tpm' in a) {
            if (a.close) closeAfterReply = true;
            return Buffer.from(a.tpm);
          }
          if (a.nsm.length > x.data.length) throw new Error('proxy: NSM answer larger than the buffer');
          x.data.fill(0);
          x.data.set(a.nsm, 0);
          return withSession();
        }
        default:
          return forward(cmd);
      }
    };

    let buf = Buffer.alloc(0);
    let busy = false;
    let closeAfterReply = false;
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (buf.length >= 10 && buf.length >= buf.readUInt32BE(2)) {
          const n = buf.readUInt32BE(2);
          const cmd = Buffer.from(buf.subarray(0, n));
          buf = buf.subarray(n);
          c.write(await handle(cmd));
          if (closeAfterReply) {
            c.end();
            return;
          }
        }
      } catch (e) {
        console.error('nitro proxy:', e);
        c.destroy();
      } finally {
        busy = false;
      }
    };
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      void pump();
    });
  });

  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  return {
    tcti,
    env: { ...process.env, TPM2TOOLS_TCTI: tcti },
    requests,
    defined: () => [...nv.keys()],
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([cmdSrv, ctlSrv].map((s) => new Promise<void>((r) => s!.close(() => r()))));
    },
  };
}
