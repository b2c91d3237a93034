/**
 * @module deploy/node/client/nitro
 *
 * The NitroTPM attestation document without AWS's `nitro-tpm-attest`: the NitroTPM answers a
 * vendor-specific TPM 2.0 command, TPM2_CC 0x20000001 (vendor bit 0x20000000 | 1), by passing an
 * NSM (Nitro Secure Module) request to the hypervisor. Facts followed (read, not copied):
 * AWS's NitroTPM-Tools (nitro-tpm-attest/src/raw/tpm/mod.rs: command code and handles;
 * tss/message_buffer: the NV buffer), and lockboot/vaportpm (crates/vaportpm-attest/src/nsm.rs:
 * a plain password session authorizes it).
 *
 * The exchange (the same steps as deploy/node/attest-join.sh `nitro_vendor_doc`):
 * 1. define an NV index, authread|authwrite, 8 KiB (the plain document is near 5 KiB), random
 *    password; write the NSM request into it: CBOR
 *    `{"Attestation": {"user_data": null, "nonce": bstr, "public_key": bstr | null}}`;
 * 2. send the vendor command: tag TPM_ST_SESSIONS, handles (nvAuth = nvIndex, nvIndex), one
 *    password authorization for the index, no parameters; response code 0 on success (a TPM
 *    without the command answers TPM_RC_COMMAND_CODE, 0x143);
 * 3. read the buffer back: the NSM's answer from offset 0, CBOR
 *    `{"Attestation": {"document": bstr}}` or `{"Error": "<code>"}`, then padding;
 * 4. undefine the index (also on failure).
 *
 * This module builds and parses the bytes (no I/O); every read of TPM or NSM output goes through
 * a bounds-checked reader and fails with a JOIN_NITRO_* code.
 */
import { ByteReader, concat, u16be, u32be } from '../../../providers/common/bytes.js';
import { isAttestError } from '../../../providers/common/errors.js';
import { JoinCodes, joinError } from './codes.js';

export const TPM2_CC_VENDOR_AWS_NSM_REQUEST = 0x20000001;
const TPM_ST_NO_SESSIONS = 0x8001;
const TPM_ST_SESSIONS = 0x8002;
const TPM_RS_PW = 0x40000009;
/** The NV buffer AWS's tool defines: 8 KiB. */
export const NITRO_NV_SIZE = 8192;
/** NV_Write/NV_Read chunk: 1 KiB, within any TPM's TPM2_PT_NV_BUFFER_MAX. */
export const NITRO_NV_CHUNK = 1024;

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
/** CBOR text string (short keys only). */
const ctext = (s: string): Uint8Array => concat(Uint8Array.of(0x60 | s.length), ascii(s));
/** CBOR byte string, definite length. */
function cbytes(b: Uint8Array): Uint8Array {
  if (b.length < 24) return concat(Uint8Array.of(0x40 | b.length), b);
  if (b.length < 0x100) return concat(Uint8Array.of(0x58, b.length), b);
  if (b.length < 0x10000) return concat(Uint8Array.of(0x59), u16be(b.length), b);
  throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `NSM request field of ${b.length} bytes`);
}
const CBOR_NULL = Uint8Array.of(0xf6);

/** The NSM Attestation request (CBOR, field order as the NSM API declares it). */
export function nsmAttestationRequest(nonce: Uint8Array, publicKey?: Uint8Array): Uint8Array {
  return concat(
    Uint8Array.of(0xa1),
    ctext('Attestation'),
    Uint8Array.of(0xa3),
    ctext('user_data'),
    CBOR_NULL,
    ctext('nonce'),
    cbytes(nonce),
    ctext('public_key'),
    publicKey ? cbytes(publicKey) : CBOR_NULL,
  );
}

/** A password authorization area (TPM_RS_PW, empty nonce, attributes 0, the password). */
function passwordAuth(password: Uint8Array): Uint8Array {
  const a = concat(u32be(TPM_RS_PW), u16be(0), Uint8Array.of(0), u16be(password.length), password);
  return concat(u32be(a.length), a);
}
/** A TPM_ST_SESSIONS command: code, handles, authorization area, parameters. */
function command(cc: number, handles: readonly number[], auth: Uint8Array, params: Uint8Array = new Uint8Array(0)): Uint8Array {
  const body = concat(u32be(cc), ...handles.map(u32be), auth, params);
  return concat(u16be(TPM_ST_SESSIONS), u32be(6 + body.length), body);
}
const TPM_RH_OWNER = 0x40000001;
const EMPTY = new Uint8Array(0);
/** TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD, ordinary index. */
const NV_ATTRIBUTES = 0x00040004;
const TPM_ALG_SHA256 = 0x000b;

/** TPM2_NV_DefineSpace by the owner (empty password): `password`, SHA-256, authread|authwrite, `size`. */
export function nvDefineCommand(nvIndex: number, password: Uint8Array, size: number): Uint8Array {
  const pub = concat(u32be(nvIndex), u16be(TPM_ALG_SHA256), u32be(NV_ATTRIBUTES), u16be(0), u16be(size));
  return command(0x12a, [TPM_RH_OWNER], passwordAuth(EMPTY), concat(u16be(password.length), password, u16be(pub.length), pub));
}
/** TPM2_NV_UndefineSpace by the owner (empty password). */
export function nvUndefineCommand(nvIndex: number): Uint8Array {
  return command(0x122, [TPM_RH_OWNER, nvIndex], passwordAuth(EMPTY));
}
/** TPM2_NV_Write of `data` at `offset`, authorized by the index's password. */
export function nvWriteCommand(nvIndex: number, password: Uint8Array, data: Uint8Array, offset: number): Uint8Array {
  return command(0x137, [nvIndex, nvIndex], passwordAuth(password), concat(u16be(data.length), data, u16be(offset)));
}
/** TPM2_NV_Read of `size` bytes at `offset`, authorized by the index's password. */
export function nvReadCommand(nvIndex: number, password: Uint8Array, size: number, offset: number): Uint8Array {
  return command(0x14e, [nvIndex, nvIndex], passwordAuth(password), concat(u16be(size), u16be(offset)));
}
/** TPM2_CC 0x20000001 for the buffer at `nvIndex`, authorized by the index's password. */
export function nsmVendorCommand(nvIndex: number, password: Uint8Array): Uint8Array {
  return command(TPM2_CC_VENDOR_AWS_NSM_REQUEST, [nvIndex, nvIndex], passwordAuth(password));
}

/**
 * A TPM response frame: tag 8001/8002, size = the bytes received. Returns the response code and
 * a reader after the header; a malformed frame throws `code` (JOIN_NITRO_COMMAND_FAILED for the
 * vendor command, JOIN_TPM_TOOL_FAILED for the NV commands).
 */
export function tpmResponse(rsp: Uint8Array, what: string, code: typeof JoinCodes.NITRO_COMMAND_FAILED | typeof JoinCodes.TPM_TOOL_FAILED): { rc: number; r: ByteReader } {
  const fail = (why: string): never => {
    throw joinError(code, `${what}: ${why}`);
  };
  if (rsp.length < 10) fail(`response of ${rsp.length} bytes`);
  const r = new ByteReader(rsp);
  const tag = r.u16('tag');
  const size = r.u32('responseSize');
  const rc = r.u32('responseCode');
  if (tag !== TPM_ST_SESSIONS && tag !== TPM_ST_NO_SESSIONS) fail(`response tag 0x${tag.toString(16)}`);
  if (size !== rsp.length) fail(`response says ${size} bytes, has ${rsp.length}`);
  return { rc, r };
}
const rcHex = (rc: number): string => '0x' + rc.toString(16).padStart(8, '0');

/** Checks the vendor command's TPM response: a well-formed frame with response code 0. */
export function checkVendorResponse(rsp: Uint8Array): void {
  const { rc } = tpmResponse(rsp, 'NitroTPM vendor command', JoinCodes.NITRO_COMMAND_FAILED);
  if (rc !== 0) {
    throw joinError(JoinCodes.NITRO_COMMAND_FAILED, `NitroTPM vendor command: response code ${rcHex(rc)}${rc === 0x143 ? ' (TPM_RC_COMMAND_CODE: not a NitroTPM)' : ''}`, {
      detail: { tpmRc: rc },
    });
  }
}

/** An NV command's response: code 0 (else JOIN_TPM_TOOL_FAILED with the code); NV_Read's data. */
export function nvResponse(rsp: Uint8Array, what: string, readSize?: number): Uint8Array {
  const { rc, r } = tpmResponse(rsp, what, JoinCodes.TPM_TOOL_FAILED);
  if (rc !== 0) throw joinError(JoinCodes.TPM_TOOL_FAILED, `${what}: TPM response code ${rcHex(rc)}`, { detail: { tpmRc: rc } });
  if (readSize === undefined) return EMPTY;
  try {
    r.u32('parameterSize');
    const data = r.tpm2b('TPM2B_MAX_NV_BUFFER');
    if (data.length !== readSize) throw joinError(JoinCodes.TPM_TOOL_FAILED, `${what}: ${data.length} bytes for ${readSize}`);
    return data;
  } catch (e) {
    if (isAttestError(e) && e.code === JoinCodes.TPM_TOOL_FAILED) throw e;
    throw joinError(JoinCodes.TPM_TOOL_FAILED, `${what}: truncated response`, { cause: e });
  }
}

/** Reads one CBOR head (major type, argument) with definite lengths only. */
function head(r: ByteReader): { major: number; arg: number } {
  const b = r.u8('CBOR head');
  const major = b >> 5;
  const info = b & 0x1f;
  if (info < 24) return { major, arg: info };
  if (info === 24) return { major, arg: r.u8('CBOR length') };
  if (info === 25) return { major, arg: r.u16('CBOR length') };
  if (info === 26) return { major, arg: r.u32('CBOR length') };
  throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, `NSM response: unsupported CBOR head 0x${b.toString(16)}`);
}
function text(r: ByteReader, what: string): string {
  const h = head(r);
  if (h.major !== 3) throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, `NSM response: ${what} is not a text string`);
  return new TextDecoder('utf-8', { fatal: true }).decode(r.bytes(h.arg, what));
}

/**
 * The attestation document from the NSM's answer at the start of `buf` (padding after it is
 * ignored). `{"Error": code}` → JOIN_NITRO_NSM_ERROR; anything else → JOIN_NITRO_RESPONSE_INVALID.
 */
export function parseNsmResponse(buf: Uint8Array): Uint8Array {
  const r = new ByteReader(buf);
  try {
    const top = head(r);
    if (top.major !== 5 || top.arg !== 1) throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, 'NSM response: not a one-entry map');
    const kind = text(r, 'response kind');
    if (kind === 'Error') {
      let code = 'unknown';
      try {
        code = text(r, 'error code').replace(/[^A-Za-z]/g, '').slice(0, 32) || 'unknown';
      } catch {
        /* the error code itself is unreadable: still the NSM's refusal */
      }
      throw joinError(JoinCodes.NITRO_NSM_ERROR, `the NSM refused the request: ${code}`, { detail: { nsmError: code } });
    }
    if (kind !== 'Attestation') throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, `NSM response: unexpected kind ${JSON.stringify(kind.slice(0, 32))}`);
    const inner = head(r);
    if (inner.major !== 5 || inner.arg !== 1) throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, 'NSM response: Attestation is not a one-entry map');
    if (text(r, 'field name') !== 'document') throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, 'NSM response: no document field');
    const d = head(r);
    if (d.major !== 2 || d.arg === 0) throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, 'NSM response: document is not a non-empty byte string');
    return r.bytes(d.arg, 'document');
  } catch (e) {
    if (isAttestError(e) && (e.code === JoinCodes.NITRO_RESPONSE_INVALID || e.code === JoinCodes.NITRO_NSM_ERROR)) throw e;
    throw joinError(JoinCodes.NITRO_RESPONSE_INVALID, `NSM response: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
