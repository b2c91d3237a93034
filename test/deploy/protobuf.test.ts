/**
 * The tiny proto3 encoder against protobufjs (an independent implementation, present in
 * node_modules through google-gax) as the decoding oracle, and against real `gotpm attest`
 * output from test/vectors/go-tpm-tools/attestations (decoded, re-encoded, compared).
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeAttestation, type GotpmAttestation } from '../../deploy/node/client/protobuf.js';
import { describeVectors, readVector } from '../helpers/vectors.js';

// Field numbers from google/go-tpm-tools proto/attest.proto and proto/tpm.proto.
const root = protobuf.parse(`
syntax = "proto3";
package attest;
message PCRs { uint32 hash = 1; map<uint32, bytes> pcrs = 2; }
message Quote { bytes quote = 1; bytes raw_sig = 2; PCRs pcrs = 3; }
message GCEInstanceInfo { string zone = 1; string project_id = 2; uint64 project_number = 3; string instance_name = 4; uint64 instance_id = 5; }
message Attestation { bytes ak_pub = 1; repeated Quote quotes = 2; bytes event_log = 3; GCEInstanceInfo instance_info = 4; bytes canonical_event_log = 5; bytes ak_cert = 6; repeated bytes intermediate_certs = 7; }
`).root;
const Attestation = root.lookupType('attest.Attestation');

interface Decoded {
  akPub?: Uint8Array;
  quotes?: Array<{ quote?: Uint8Array; rawSig?: Uint8Array; pcrs?: { hash?: number; pcrs?: Record<string, Uint8Array> } }>;
  eventLog?: Uint8Array;
  akCert?: Uint8Array;
  intermediateCerts?: Uint8Array[];
  instanceInfo?: unknown;
  canonicalEventLog?: Uint8Array;
}
const decode = (b: Uint8Array): Decoded => Attestation.toObject(Attestation.decode(b), { defaults: false }) as Decoded;
const bytes = (b?: Uint8Array): number[] => [...(b ?? [])];

describe('gotpm Attestation encoder', () => {
  it('round-trips through protobufjs', () => {
    const a: GotpmAttestation = {
      akPub: new Uint8Array([0, 0x23, 0, 0x0b, 1, 2, 3]),
      quotes: [
        { bank: 'sha1', quote: new Uint8Array([0xff, 0x54]), rawSig: new Uint8Array([9]), pcrs: new Map([[0, new Uint8Array(20)], [23, new Uint8Array(20).fill(7)]]) },
        { bank: 'sha256', quote: new Uint8Array([1]), rawSig: new Uint8Array([2]), pcrs: new Map([[7, new Uint8Array(32).fill(1)]]) },
      ],
      eventLog: new Uint8Array([5, 5, 5]),
      akCert: new Uint8Array([0x30, 0]),
      intermediateCerts: [new Uint8Array([0x30, 1, 0])],
    };
    const d = decode(encodeAttestation(a));
    expect(bytes(d.akPub)).toEqual(bytes(a.akPub));
    expect(d.quotes).toHaveLength(2);
    expect(d.quotes![0]!.pcrs!.hash).toBe(4);
    expect(d.quotes![1]!.pcrs!.hash).toBe(0x0b);
    expect(bytes(d.quotes![0]!.pcrs!.pcrs!['23'])).toEqual(bytes(new Uint8Array(20).fill(7)));
    expect(bytes(d.quotes![0]!.pcrs!.pcrs!['0'])).toEqual(bytes(new Uint8Array(20)));
    expect(bytes(d.eventLog)).toEqual([5, 5, 5]);
    expect(bytes(d.akCert)).toEqual([0x30, 0]);
    expect(d.intermediateCerts!.map(bytes)).toEqual([[0x30, 1, 0]]);
  });

  it('fuzz: anything encoded decodes to the same fields (2,000 cases)', () => {
    const u8 = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: 1, maxLength: max });
    fc.assert(
      fc.property(
        u8(300),
        fc.array(fc.record({ quote: u8(200), rawSig: u8(300), idx: fc.uniqueArray(fc.integer({ min: 0, max: 23 }), { maxLength: 24 }) }), { maxLength: 3 }),
        fc.option(u8(4000), { nil: undefined }),
        (akPub, qs, eventLog) => {
          const a: GotpmAttestation = {
            akPub,
            quotes: qs.map((q) => ({ bank: 'sha256' as const, quote: q.quote, rawSig: q.rawSig, pcrs: new Map(q.idx.map((i) => [i, new Uint8Array(32).fill(i)])) })),
            ...(eventLog ? { eventLog } : {}),
          };
          const d = decode(encodeAttestation(a));
          expect(bytes(d.akPub)).toEqual(bytes(akPub));
          expect((d.quotes ?? []).length).toBe(qs.length);
          (d.quotes ?? []).forEach((dq, i) => {
            expect(bytes(dq.quote)).toEqual(bytes(qs[i]!.quote));
            expect(Object.keys(dq.pcrs?.pcrs ?? {}).map(Number).sort((x, y) => x - y)).toEqual([...qs[i]!.idx].sort((x, y) => x - y));
          });
          expect(bytes(d.eventLog)).toEqual(bytes(eventLog));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describeVectors('gotpm Attestation encoder vs real gotpm output', () => {
  for (const f of ['gce-cos-85-nonce9009.pb', 'gce-cos-85-no-nonce.pb']) {
    it(`re-encodes ${f} to the same message and size (map order aside)`, () => {
      const orig = readVector(`go-tpm-tools/attestations/${f}`);
      const d = decode(orig);
      const banks: Record<number, 'sha1' | 'sha256' | 'sha384'> = { 4: 'sha1', 11: 'sha256', 12: 'sha384' };
      const again = encodeAttestation({
        akPub: d.akPub!,
        quotes: (d.quotes ?? []).map((q) => ({
          bank: banks[q.pcrs!.hash!]!,
          quote: q.quote!,
          rawSig: q.rawSig!,
          pcrs: new Map(Object.entries(q.pcrs!.pcrs ?? {}).map(([k, v]) => [Number(k), v])),
        })),
        ...(d.eventLog ? { eventLog: d.eventLog } : {}),
        ...(d.akCert ? { akCert: d.akCert } : {}),
        ...(d.intermediateCerts ? { intermediateCerts: d.intermediateCerts } : {}),
      });
      // Real GCE output also carries instance_info (field 4), which the client does not send
      // (the broker derives identity from the AK certificate): compare without it.
      const withoutExtras = Attestation.encode(Attestation.fromObject({ ...d, instanceInfo: undefined, canonicalEventLog: undefined })).finish();
      expect(Buffer.from(again).equals(Buffer.from(withoutExtras))).toBe(true);
      // gotpm marshals PCR maps in Go's random map order, so bytes differ only in entry order:
      // same size (key 0 written explicitly, as Go does) and the same decoded message.
      if (!d.instanceInfo && !d.canonicalEventLog) {
        expect(again.length).toBe(orig.length);
        expect(decode(again)).toEqual(d);
      }
    });
  }
});
