/**
 * RIM verification (providers/nvidia/rim.ts, xml.ts) on NVIDIA's real signed RIMs
 * (test/vectors/nvidia, INDEX.md):
 * - every real RIM verifies at a time inside its signer chain's validity (the XML-DSig digest
 *   and ECDSA signature reproduce NVIDIA's, so the C14N 1.1 serializer is right), and the active
 *   indexes are the ones INDEX.md lists;
 * - NVIDIA's own negative RIMs each fail with their code: expired signer, tampered
 *   SignatureValue, debug-root chain, payload edited after signing, a non-root pinned as anchor;
 * - signature-wrapping attempts (a second Payload inside or outside the signed tree, the signed
 *   Payload moved into the Signature, a duplicated Signature, a Reference URI other than "", a
 *   Signature that is not enveloped, changed transforms) and XML tricks (DTD, entities,
 *   comments, PIs, xml:base, depth and size bombs) are refused;
 * - bit-flip sweeps: every byte of SignedInfo and a dense stride over the digested content;
 *   nothing is accepted and every failure is a typed AttestError.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyRim } from '../../providers/nvidia/rim.js';
import { canonicalize, parseXml } from '../../providers/nvidia/xml.js';
import { PinIds } from '../../providers/common/pins.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { parsePemCertificates, parseCertificate, fingerprint, type TrustAnchor } from '../../providers/common/x509.js';
import { AttestError } from '../../providers/common/errors.js';
import { describeVectors, readVector, readVectorText } from '../helpers/vectors.js';
import { AFTER_TEST_RIMS, codeOfAsync, MISMATCH_RIM_TIME, nvidiaTrust, PRE230_TIME, RIM_550_TIME, SAMPLES, SDK } from './fixtures.js';

const DRIVER_TEST = `${SAMPLES}/Driver_RIM_test_no_gpu.swidtag`;
const VBIOS_TEST = `${SAMPLES}/1010_0200_882_96005E0001_test_no_gpu.swidtag`;
const DRIVER_550 = `${SDK}/NV_GPU_DRIVER_GH100_550.144.03.xml`;
const enc = new TextEncoder();

let anchors: readonly TrustAnchor[];
beforeAll(async () => {
  anchors = (await nvidiaTrust()).anchors([PinIds.NVIDIA_CORIM_ROOT_CA]);
});

const verify = (bytes: Uint8Array, at: Date, a: readonly TrustAnchor[] = anchors) => verifyRim(bytes, { rimId: 'TEST', kind: 'driver', anchors: a, at });
const verifyText = (xml: string, at: Date) => verify(enc.encode(xml), at);

/** The validity window shared by every certificate in a RIM's X509Data. */
function chainWindow(xml: string): { from: Date; to: Date } {
  const certs = [...xml.matchAll(/<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/g)].map((m) =>
    parseCertificate(new Uint8Array(Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64'))),
  );
  return {
    from: new Date(Math.max(...certs.map((c) => c.notBefore.getTime()))),
    to: new Date(Math.min(...certs.map((c) => c.notAfter.getTime()))),
  };
}

describeVectors('nvidia RIM: NVIDIA-signed RIMs verify', () => {
  it('Driver_RIM_test_no_gpu (545.00): active indexes 7 and 21-40', async () => {
    const r = await verify(readVector(DRIVER_TEST), PRE230_TIME);
    expect([r.version, r.product]).toEqual(['545.00', 'GH100']);
    expect(r.measurements).toHaveLength(64);
    expect(r.measurements.filter((m) => m.active).map((m) => m.index)).toEqual([7, ...Array.from({ length: 20 }, (_, k) => 21 + k)]);
    expect(r.path.map((c) => c.subject.split('CN=')[1]?.split(',')[0])).toEqual([
      'HCC RIM L4 Signer',
      'NVIDIA Reference Value L3 GH100 001',
      'NVIDIA Reference Value GH100 CA',
      'NVIDIA CoRIM signing Root CA',
    ]);
  });

  it('1010_0200_882_96005E0001_test_no_gpu: active 0-6 and 8-12', async () => {
    const r = await verify(readVector(VBIOS_TEST), PRE230_TIME);
    expect(r.version).toBe('96.00.5E.00.01');
    expect(r.measurements.filter((m) => m.active).map((m) => m.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]);
  });

  it('NV_GPU_DRIVER_GH100_550.144.03 (attestation-sdk) verifies', async () => {
    const r = await verify(readVector(DRIVER_550), RIM_550_TIME);
    expect(r.version).toBe('550.144.03');
  });

  it('the genuine VBIOS "measurement mismatch" RIM verifies (it is the report that differs)', async () => {
    const r = await verify(readVector(`${SDK}/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml`), MISMATCH_RIM_TIME);
    expect(r.version).toBe('96.00.5E.00.01');
  });

  const PROD = [
    '1010_0200_882_96005E0001', '1010_0200_882_96005E0003', '1010_0200_882_960074001A', '1010_0200_882_960074001C',
    '1010_0205_862_96005E0002', '1010_0205_862_96005E0004', '1010_0205_862_960074001F', '1010_0205_862_9600740020',
    '1010_0210_886_9600740011', '1010_0215_866_9600740010', 'g520_0200_885_9600740001', 'g520_0200_885_960074000D',
    'g520_0202_885_96006D0008', 'g520_0202_885_96006D0027', 'g520_0202_885_9600740014', 'g520_0202_885_9600740018',
    'g520_0205_865_9600740006', 'g520_0205_865_960074000F', 'g520_0207_865_9600740015', 'g520_0207_865_9600740019',
    'g520_0213_881_96006D0007', 'g520_0213_881_96006D0026', 'g520_0228_889_96006D000A', 'g520_0228_889_96006D0029',
  ];
  it(`all ${PROD.length} production VBIOS RIMs verify inside their signers' validity, versions matching their names`, async () => {
    for (const name of PROD) {
      const xml = readVectorText(`${SAMPLES}/${name}_PROD.swidtag`);
      const w = chainWindow(xml);
      expect(w.from.getTime()).toBeLessThan(w.to.getTime());
      const r = await verify(enc.encode(xml), new Date(w.from.getTime() + 86_400_000));
      expect({ name, v: r.version.replace(/\./g, '').toUpperCase() }).toEqual({ name, v: name.split('_')[3] });
    }
  });
});

describeVectors("nvidia RIM: NVIDIA's negative RIMs, each with its code", () => {
  it('the test driver RIM after its signer expired (2025-06-26): RIM_SIGNER_EXPIRED', async () => {
    expect(await codeOfAsync(verify(readVector(DRIVER_TEST), AFTER_TEST_RIMS))).toBe('NVIDIA_RIM_SIGNER_EXPIRED');
  });
  it('before its signer was valid: RIM_SIGNER_EXPIRED (not yet valid)', async () => {
    expect(await codeOfAsync(verify(readVector(DRIVER_TEST), new Date('2022-01-01T00:00:00Z')))).toBe('NVIDIA_RIM_SIGNER_EXPIRED');
  });
  it('570.124.03 "_expired" (one-day test signer): RIM_SIGNER_EXPIRED after that day', async () => {
    expect(await codeOfAsync(verify(readVector(`${SDK}/sample_rims/NV_GPU_DRIVER_GH100_570.124.03_expired.xml`), RIM_550_TIME))).toBe('NVIDIA_RIM_SIGNER_EXPIRED');
  });
  it('incorrect_signature_driver_rim (SignatureValue altered): RIM_SIGNATURE_INVALID', async () => {
    expect(await codeOfAsync(verify(readVector(`${SDK}/incorrect_signature_driver_rim.xml`), RIM_550_TIME))).toBe('NVIDIA_RIM_SIGNATURE_INVALID');
  });
  it('incorrect_cert_chain_driver_rim (debug-only root): RIM_SIGNER_UNTRUSTED', async () => {
    expect(await codeOfAsync(verify(readVector(`${SDK}/incorrect_cert_chain_driver_rim.xml`), RIM_550_TIME))).toBe('NVIDIA_RIM_SIGNER_UNTRUSTED');
  });
  it('535.86.09 "_measurement_mismatch" (payload edited, SignedInfo intact): RIM_DIGEST_MISMATCH', async () => {
    expect(await codeOfAsync(verify(readVector(`${SDK}/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml`), RIM_550_TIME))).toBe('NVIDIA_RIM_DIGEST_MISMATCH');
  });
  it('incorrect_rim_root.crt (an L4 signer) trusted as the anchor: RIM_SIGNER_UNTRUSTED', async () => {
    const cert = parsePemCertificates(readVectorText(`${SDK}/incorrect_rim_root.crt`))[0]!;
    const fake: TrustAnchor = { id: PinIds.NVIDIA_CORIM_ROOT_CA, sha256: await fingerprint(cert), source: 'test', cert };
    const a = createTrustStore([fake]).anchors([PinIds.NVIDIA_CORIM_ROOT_CA]);
    expect(await codeOfAsync(verify(readVector(DRIVER_550), RIM_550_TIME, a))).toBe('NVIDIA_RIM_SIGNER_UNTRUSTED');
  });
  it('no CoRIM root in the trust store: TRUST_ANCHOR_MISSING (config)', async () => {
    expect(await codeOfAsync(verify(readVector(DRIVER_550), RIM_550_TIME, []))).toBe('NVIDIA_TRUST_ANCHOR_MISSING');
  });
});

describeVectors('nvidia RIM: signature wrapping and XML tricks are refused', () => {
  let xml: string;
  beforeAll(() => {
    xml = readVectorText(DRIVER_TEST);
  });
  const evilPayload =
    '<ns0:Payload><ns0:Resource type="Measurement" index="7" active="True" alternatives="1" ns2:Hash0="' +
    'ab'.repeat(48) +
    '" name="Measurement_7" size="48"/></ns0:Payload>';
  const sigStart = (): number => xml.indexOf('<ds:Signature');
  const rows: Array<{ name: string; mutate: (x: string) => string; wantCode: string }> = [
    { name: 'control: unchanged', mutate: (x) => x, wantCode: 'ACCEPTED' },
    { name: 'a second Payload outside the signed tree (inside ds:Signature, in a ds:Object)', mutate: (x) => x.replace('</ds:KeyInfo>', `</ds:KeyInfo><ds:Object>${evilPayload}</ds:Object>`), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a second Payload in the document (digested)', mutate: (x) => x.replace('<ds:Signature', `${evilPayload}<ds:Signature`), wantCode: 'NVIDIA_RIM_DIGEST_MISMATCH' },
    {
      name: 'the signed Payload moved into ds:Object, an evil one in its place (classic wrapping)',
      mutate: (x) => {
        const p0 = x.indexOf('<ns0:Payload');
        const p1 = x.indexOf('</ns0:Payload>') + '</ns0:Payload>'.length;
        const signed = x.slice(p0, p1);
        return (x.slice(0, p0) + evilPayload + x.slice(p1)).replace('</ds:KeyInfo>', `</ds:KeyInfo><ds:Object>${signed}</ds:Object>`);
      },
      wantCode: 'NVIDIA_RIM_MALFORMED',
    },
    { name: 'a duplicated Signature', mutate: (x) => x.replace('</SoftwareIdentity>', `${x.slice(sigStart(), x.indexOf('</SoftwareIdentity>'))}</SoftwareIdentity>`), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'Reference URI="#payload"', mutate: (x) => x.replace('<ds:Reference URI="">', '<ds:Reference URI="#payload">'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a Reference with an Id', mutate: (x) => x.replace('<ds:Reference URI="">', '<ds:Reference URI="" Id="r">'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a second Reference', mutate: (x) => x.replace('</ds:Reference>', `</ds:Reference>${x.slice(x.indexOf('<ds:Reference'), x.indexOf('</ds:Reference>') + 15)}`), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'enveloped transform removed', mutate: (x) => x.replace('<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>', ''), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'exclusive C14N instead of C14N 1.1', mutate: (x) => x.replace('<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>', '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'rsa-sha256 signature method', mutate: (x) => x.replace('xmldsig-more#ecdsa-sha384', 'xmldsig-more#rsa-sha256'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'Signature not enveloped (moved into Payload)', mutate: (x) => { const s = x.slice(sigStart(), x.indexOf('</SoftwareIdentity>')); return x.replace(s, '').replace('</ns0:Payload>', `${s}</ns0:Payload>`); }, wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a DTD with an entity', mutate: (x) => `<!DOCTYPE SoftwareIdentity [<!ENTITY e "x">]>${x}`, wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'an undeclared entity reference', mutate: (x) => x.replace('name="GH100"', 'name="&e;"'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a comment', mutate: (x) => x.replace('<ns0:Payload', '<!-- x --><ns0:Payload'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a processing instruction', mutate: (x) => `<?xml-stylesheet href="x"?>${x}`, wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a CDATA section', mutate: (x) => x.replace('</ns0:Payload>', '<![CDATA[x]]></ns0:Payload>'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'xml:base on an element', mutate: (x) => x.replace('<ns0:Payload ', '<ns0:Payload xml:base="http://x/" '), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a carriage return', mutate: (x) => x.replace('\n', '\r\n'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a literal newline inside an attribute value', mutate: (x) => x.replace('name="GH100"', 'name="GH\n100"'), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a duplicate attribute by expanded name', mutate: (x) => x.replace('ns2:Hash0=', 'SHA384:Hash0="00" ns2:Hash0='), wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'text after the document element', mutate: (x) => `${x}x`, wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'a UTF-8 byte-order mark', mutate: (x) => `\uFEFF${x}`, wantCode: 'NVIDIA_RIM_MALFORMED' },
    { name: 'elements nested 40 deep', mutate: (x) => x.replace('<ns0:Payload', `${'<ns0:a>'.repeat(40)}${'</ns0:a>'.repeat(40)}<ns0:Payload`), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'a document above 256 KiB', mutate: (x) => x.replace('</ns0:Payload>', `${' '.repeat(300_000)}</ns0:Payload>`), wantCode: 'LIMIT_EXCEEDED' },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      expect(await codeOfAsync(verifyText(row.mutate(xml), PRE230_TIME))).toBe(row.wantCode);
    });
  }
});

describeVectors('nvidia RIM: bit-flip sweeps', () => {
  async function sweep(xml: Uint8Array, from: number, to: number, stride: number): Promise<Map<string, number>> {
    const codes = new Map<string, number>();
    for (let i = from; i < to; i += stride) {
      const m = xml.slice();
      m[i] = (m[i] as number) ^ (1 << (i % 8));
      let code = 'ACCEPTED';
      try {
        await verify(m, PRE230_TIME);
      } catch (e) {
        if (!(e instanceof AttestError)) throw new Error(`flip at ${i} threw an untyped ${String(e)}`, { cause: e });
        code = e.code;
      }
      if (code === 'ACCEPTED') throw new Error(`flip at ${i} (bit ${i % 8}) was accepted`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    return codes;
  }

  it('every byte of ds:SignedInfo: nothing accepted', async () => {
    const bytes = readVector(DRIVER_TEST);
    const text = Buffer.from(bytes).toString('latin1');
    const codes = await sweep(bytes, text.indexOf('<ds:SignedInfo>'), text.indexOf('</ds:SignedInfo>') + 16, 1);
    expect(codes.get('NVIDIA_RIM_SIGNATURE_INVALID')).toBeGreaterThan(0);
  });

  it('the digested content (document element up to the Signature), stride 9: nothing accepted', async () => {
    const bytes = readVector(DRIVER_TEST);
    const text = Buffer.from(bytes).toString('latin1');
    const codes = await sweep(bytes, 0, text.indexOf('<ds:Signature'), 9);
    expect(codes.get('NVIDIA_RIM_DIGEST_MISMATCH')).toBeGreaterThan(0);
  });
});

describe('nvidia XML: canonicalization details (no vectors needed)', () => {
  const c14n = (s: string, omitLocal?: string) => {
    const root = parseXml(enc.encode(s), 'NVIDIA_RIM_MALFORMED');
    const omit = omitLocal ? root.children.find((c) => c.type === 'element' && c.local === omitLocal) : undefined;
    return canonicalize(root, omit as never);
  };
  it('empty elements, attribute order, namespace order, superfluous declarations (C14N 1.0 §3 examples)', () => {
    expect(c14n('<e1   b="2" xmlns:b="http://b" a="1" b:c="3" xmlns="http://d"><e2 xmlns="http://d"/></e1>')).toBe(
      '<e1 xmlns="http://d" xmlns:b="http://b" a="1" b="2" b:c="3"><e2></e2></e1>',
    );
  });
  it('character and entity references are normalized, special characters escaped', () => {
    expect(c14n('<a x="&#x9;&lt;&quot;&apos;&amp;">&gt;&#65;&amp;&lt;"\'</a>')).toBe('<a x="&#x9;&lt;&quot;\'&amp;">&gt;A&amp;&lt;"\'</a>');
  });
  it('xmlns="" is rendered only where it undoes a default namespace', () => {
    expect(c14n('<a xmlns=""><b xmlns="http://x"><c xmlns=""/></b></a>')).toBe('<a><b xmlns="http://x"><c xmlns=""></c></b></a>');
  });
  it('an apex element renders every namespace in scope', () => {
    const root = parseXml(enc.encode('<r xmlns="http://d" xmlns:p="http://p"><p:s xmlns:q="http://q"><p:t/></p:s></r>'), 'NVIDIA_RIM_MALFORMED');
    const s = root.children[0];
    expect(canonicalize(s as never)).toBe('<p:s xmlns="http://d" xmlns:p="http://p" xmlns:q="http://q"><p:t></p:t></p:s>');
  });
  it('omitting a subtree keeps the text around it (enveloped-signature transform)', () => {
    expect(c14n('<r>\n  <a/>\n<s><x/></s></r>', 's')).toBe('<r>\n  <a></a>\n</r>');
  });
});
