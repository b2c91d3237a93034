/**
 * @module providers/nvidia/der
 *
 * NVIDIA's certificates, DICE extensions and OCSP messages are read and written with the common
 * DER module, providers/common/der.ts. The writer is re-exported here under the names the NVIDIA
 * test PKI (test/nvidia/testpki.ts) builds its DICE extensions with.
 */
export { encodeOid, encodeTlv as tlv, TAG } from '../common/der.js';
