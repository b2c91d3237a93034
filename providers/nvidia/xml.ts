/**
 * @module providers/nvidia/xml
 *
 * A strict, minimal XML 1.0 + Namespaces parser and the inclusive Canonical XML 1.1 serializer
 * (without comments) that NVIDIA's RIMs need — and nothing more. Why this instead of a library
 * is argued in docs/nvidia.md ("Why a minimal XML parser"); in short: the verifier must
 * canonicalize, digest and then read measurements from *one* tree it fully understands, on
 * Workers, and every feature it leaves out is a feature an attacker cannot use.
 *
 * Accepted (XML 1.0 fifth edition §2–§4, Namespaces in XML 1.0 §3–§6):
 * - UTF-8 only (fatal decoding; no byte-order mark), optionally an XML declaration exactly at
 *   the start with `version="1.0"`, `encoding="UTF-8"`, `standalone`;
 * - elements, attributes (single or double quoted) and character data; the five predefined
 *   entity references and numeric character references (each must name an XML `Char`);
 * - namespace declarations on any element, prefixed element and attribute names resolved
 *   against them; duplicate attributes (by qualified *and* by expanded name) refused.
 *
 * Refused, each with the caller's RIM_MALFORMED code (or LIMIT_EXCEEDED for the caps):
 * - DOCTYPE / DTDs (so no entity declarations, no entity expansion, no default attributes),
 *   comments, CDATA sections, processing instructions, any `&name;` other than the five;
 * - characters outside the XML `Char` production; carriage returns anywhere and literal tabs or
 *   newlines inside attribute values (so no end-of-line or attribute-value normalization is ever
 *   needed: the parsed value *is* the source text with references replaced);
 * - `xml:*` attributes and declarations of the `xml`/`xmlns` prefixes or their namespaces (C14N
 *   1.1 gives `xml:` attributes special inheritance rules; RIMs use none), relative or empty
 *   namespace names for prefixes, names outside ASCII NCName form;
 * - any content besides whitespace before or after the document element;
 * - input above `maxBytes`, nesting deeper than `maxDepth`, more than `maxElements` elements or
 *   `maxAttributes` attributes on one element, names longer than `maxNameLength`.
 *
 * The parser is iterative (an explicit stack), so depth cannot exhaust the call stack.
 *
 * Canonical XML 1.1 (W3C REC 2008-05-02, §2.1–§2.4, applying C14N 1.0 §1.1/§2.3 processing):
 * `canonicalize(el, omit)` serializes the subtree at `el` as the document subset "el and its
 * descendants, minus `omit` and its descendants": start and end tags for every element (empty
 * elements become `<a></a>`), namespace declarations rendered where they differ from the nearest
 * output ancestor's (all of an apex element's in-scope namespaces), namespace declarations sorted
 * by prefix then attributes by (namespace URI, local name), attribute values in double quotes
 * escaping `& < " #x9 #xA #xD`, text escaping `& < > #xD`. With `el` the document element and
 * `omit` the ds:Signature, this is exactly the enveloped-signature transform followed by C14N 1.1
 * of the document; with `el` = ds:SignedInfo and no `omit`, the canonical SignedInfo.
 */
import { CommonCodes, malformed, type CodeOfKind } from '../common/errors.js';

export interface XmlLimits {
  readonly maxBytes: number;
  readonly maxDepth: number;
  readonly maxElements: number;
  readonly maxAttributes: number;
  readonly maxNameLength: number;
}

/** A RIM is ~21 KiB with ~80 elements; these caps leave an order of magnitude. */
export const XML_LIMITS: XmlLimits = Object.freeze({
  maxBytes: 256 * 1024,
  maxDepth: 12,
  maxElements: 2048,
  maxAttributes: 48,
  maxNameLength: 128,
});

export interface XmlAttribute {
  readonly qname: string;
  /** '' when unprefixed. */
  readonly prefix: string;
  readonly local: string;
  /** Namespace name; '' for unprefixed attributes (which have none). */
  readonly ns: string;
  readonly value: string;
}

export interface XmlText {
  readonly type: 'text';
  readonly value: string;
}

export interface XmlElement {
  readonly type: 'element';
  readonly qname: string;
  readonly prefix: string;
  readonly local: string;
  /** Namespace name; '' when none. */
  readonly ns: string;
  /** Ordinary attributes in source order (namespace declarations are in `nsDecls`). */
  readonly attributes: readonly XmlAttribute[];
  /** Declarations made on this element: prefix ('' = default) → namespace name. */
  readonly nsDecls: ReadonlyMap<string, string>;
  /** Every namespace in scope here (inherited and own); '' is the default namespace. */
  readonly inScope: ReadonlyMap<string, string>;
  readonly children: readonly XmlNode[];
  readonly parent: XmlElement | null;
  /** Character offset of the start tag, for messages. */
  readonly offset: number;
}

export type XmlNode = XmlElement | XmlText;

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';
const NAME_RE = /^[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?$/;
const NAME_CHAR_RE = /[A-Za-z0-9._:-]/;
const ABSOLUTE_URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:\S*$/;
const XML_DECL_RE = /^<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])1\.0\1(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])[Uu][Tt][Ff]-8\2)?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(?:yes|no)\3)?[ \t\n]*\?>/;

const isWs = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n';

/** XML 1.0 `Char`: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

interface MutableElement {
  type: 'element';
  qname: string;
  prefix: string;
  local: string;
  ns: string;
  attributes: XmlAttribute[];
  nsDecls: Map<string, string>;
  inScope: Map<string, string>;
  children: XmlNode[];
  parent: MutableElement | null;
  offset: number;
}

/** Parses `bytes` as one XML document and returns its document element. */
export function parseXml(bytes: Uint8Array, code: CodeOfKind<'malformed'>, limits: XmlLimits = XML_LIMITS): XmlElement {
  const fail = (m: string, at?: number): never => {
    throw malformed(code, `XML: ${m}${at === undefined ? '' : ` (at character ${at})`}`, at === undefined ? {} : { offset: at });
  };
  const limit = (m: string, at?: number): never => {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `XML: ${m}`, at === undefined ? {} : { offset: at });
  };
  if (bytes.byteLength > limits.maxBytes) limit(`document of ${bytes.byteLength} bytes exceeds ${limits.maxBytes}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw malformed(code, 'XML: the document is not valid UTF-8', { cause });
  }
  for (let k = 0; k < text.length; k++) {
    const cp = text.codePointAt(k) as number;
    if (cp > 0xffff) k++;
    if (cp === 0xd) fail('carriage returns are not accepted', k);
    if (!isXmlChar(cp)) fail(`U+${cp.toString(16).toUpperCase()} is not an XML character`, k);
  }

  const n = text.length;
  let i = 0;
  const decl = XML_DECL_RE.exec(text);
  if (decl) i = decl[0].length;
  else if (text.startsWith('<?xml')) fail('the XML declaration must be version 1.0, encoding UTF-8', 0);

  /** Decodes the five predefined entities and character references in `raw`. */
  const decode = (raw: string, at: number): string => {
    if (!raw.includes('&')) return raw;
    let out = '';
    let k = 0;
    while (k < raw.length) {
      const amp = raw.indexOf('&', k);
      if (amp < 0) {
        out += raw.slice(k);
        break;
      }
      out += raw.slice(k, amp);
      const semi = raw.indexOf(';', amp);
      if (semi < 0 || semi - amp > 12) fail('an "&" that starts no reference', at + amp);
      const ref = raw.slice(amp + 1, semi);
      let cp: number;
      if (ref === 'lt') cp = 0x3c;
      else if (ref === 'gt') cp = 0x3e;
      else if (ref === 'amp') cp = 0x26;
      else if (ref === 'apos') cp = 0x27;
      else if (ref === 'quot') cp = 0x22;
      else if (/^#[0-9]{1,7}$/.test(ref)) cp = Number.parseInt(ref.slice(1), 10);
      else if (/^#x[0-9A-Fa-f]{1,6}$/.test(ref)) cp = Number.parseInt(ref.slice(2), 16);
      else return fail(`entity reference "&${ref};" is not one of the five predefined ones`, at + amp);
      if (!isXmlChar(cp)) fail(`character reference "&${ref};" is not an XML character`, at + amp);
      out += String.fromCodePoint(cp);
      k = semi + 1;
    }
    return out;
  };

  const readName = (what: string): string => {
    const start = i;
    while (i < n && NAME_CHAR_RE.test(text[i] as string)) {
      i++;
      if (i - start > limits.maxNameLength) limit(`${what} name longer than ${limits.maxNameLength}`, start);
    }
    const name = text.slice(start, i);
    if (!NAME_RE.test(name)) fail(`"${name}" is not an accepted ${what} name`, start);
    return name;
  };
  const skipWs = (): boolean => {
    const s = i;
    while (isWs(text[i])) i++;
    return i > s;
  };
  const split = (qname: string): [string, string] => {
    const c = qname.indexOf(':');
    return c < 0 ? ['', qname] : [qname.slice(0, c), qname.slice(c + 1)];
  };

  const stack: MutableElement[] = [];
  let root: MutableElement | undefined;
  let elements = 0;

  while (i < n) {
    const c = text[i];
    if (stack.length === 0) {
      if (isWs(c)) {
        i++;
        continue;
      }
      if (root) fail('content after the document element', i);
      if (c !== '<') fail('the document must start with an element', i);
    }
    if (c !== '<') {
      // Character data up to the next tag.
      const start = i;
      const end = text.indexOf('<', i);
      if (end < 0) fail('unterminated element content', start);
      const raw = text.slice(start, end);
      if (raw.includes(']]>')) fail('"]]>" in character data', start);
      const parent = stack[stack.length - 1] as MutableElement;
      parent.children.push(Object.freeze({ type: 'text', value: decode(raw, start) }));
      i = end;
      continue;
    }
    const c1 = text[i + 1];
    if (c1 === '!') fail('comments, CDATA sections and document type declarations are not accepted', i);
    if (c1 === '?') fail('processing instructions are not accepted', i);
    if (c1 === '/') {
      const at = i;
      i += 2;
      const name = readName('end tag');
      skipWs();
      if (text[i] !== '>') fail(`end tag </${name}> is not closed`, at);
      i++;
      const open = stack.pop();
      if (!open || open.qname !== name) fail(`end tag </${name}> does not match ${open ? `<${open.qname}>` : 'any open element'}`, at);
      continue;
    }
    // Start tag.
    const at = i;
    i++;
    const qname = readName('element');
    const raw: Array<{ qname: string; value: string; at: number }> = [];
    let selfClosing = false;
    for (;;) {
      const hadWs = skipWs();
      if (text.startsWith('/>', i)) {
        selfClosing = true;
        i += 2;
        break;
      }
      if (text[i] === '>') {
        i++;
        break;
      }
      if (i >= n) fail(`start tag <${qname}> is not closed`, at);
      if (!hadWs) fail(`attributes of <${qname}> must be separated by whitespace`, i);
      const aAt = i;
      const aName = readName('attribute');
      skipWs();
      if (text[i] !== '=') fail(`attribute ${aName} has no value`, aAt);
      i++;
      skipWs();
      const quote = text[i];
      if (quote !== '"' && quote !== "'") return fail(`attribute ${aName} value is not quoted`, i);
      const vStart = i + 1;
      const vEnd = text.indexOf(quote, vStart);
      if (vEnd < 0) fail(`attribute ${aName} value is not terminated`, vStart);
      const rawValue = text.slice(vStart, vEnd);
      if (/[<\t\n]/.test(rawValue)) fail(`attribute ${aName} value holds "<" or a literal tab/newline`, vStart);
      if (raw.some((a) => a.qname === aName)) fail(`attribute ${aName} appears twice on <${qname}>`, aAt);
      if (raw.length >= limits.maxAttributes) limit(`<${qname}> has more than ${limits.maxAttributes} attributes`, aAt);
      raw.push({ qname: aName, value: decode(rawValue, vStart), at: aAt });
      i = vEnd + 1;
    }

    if (++elements > limits.maxElements) limit(`more than ${limits.maxElements} elements`, at);
    if (stack.length + 1 > limits.maxDepth) limit(`elements nested deeper than ${limits.maxDepth}`, at);
    const parent = stack[stack.length - 1] ?? null;

    // Namespace declarations first (Namespaces in XML 1.0 §3), then name resolution (§6).
    const nsDecls = new Map<string, string>();
    const ordinary: Array<{ qname: string; value: string; at: number }> = [];
    for (const a of raw) {
      const [p, l] = split(a.qname);
      if (a.qname === 'xmlns' || p === 'xmlns') {
        const prefix = a.qname === 'xmlns' ? '' : l;
        if (prefix === 'xml' || prefix === 'xmlns') fail(`the ${prefix} prefix cannot be declared`, a.at);
        if (a.value === XML_NS || a.value === XMLNS_NS) fail(`the ${a.value} namespace cannot be bound`, a.at);
        if (prefix !== '' && a.value === '') fail(`prefix ${prefix} is bound to an empty namespace name`, a.at);
        if (a.value !== '' && !ABSOLUTE_URI_RE.test(a.value)) fail(`namespace name "${a.value}" is not an absolute URI`, a.at);
        nsDecls.set(prefix, a.value);
      } else {
        ordinary.push(a);
      }
    }
    const inScope = new Map(parent?.inScope ?? []);
    for (const [p, u] of nsDecls) inScope.set(p, u);
    const [prefix, local] = split(qname);
    if (prefix === 'xml' || prefix === 'xmlns') fail(`element <${qname}> uses a reserved prefix`, at);
    const ns = prefix === '' ? (inScope.get('') ?? '') : inScope.get(prefix);
    if (ns === undefined) fail(`prefix ${prefix} of <${qname}> is not declared`, at);
    const attributes: XmlAttribute[] = [];
    const expanded = new Set<string>();
    for (const a of ordinary) {
      const [ap, al] = split(a.qname);
      if (ap === 'xml') fail(`xml:* attributes (${a.qname}) are not accepted`, a.at);
      const ans = ap === '' ? '' : inScope.get(ap);
      if (ans === undefined) fail(`prefix ${ap} of attribute ${a.qname} is not declared`, a.at);
      const key = `${ans}\u0000${al}`;
      if (expanded.has(key)) fail(`attribute {${ans}}${al} appears twice on <${qname}>`, a.at);
      expanded.add(key);
      attributes.push(Object.freeze({ qname: a.qname, prefix: ap, local: al, ns: ans as string, value: a.value }));
    }
    const el: MutableElement = {
      type: 'element',
      qname,
      prefix,
      local,
      ns: ns as string,
      attributes,
      nsDecls,
      inScope,
      children: [],
      parent,
      offset: at,
    };
    if (parent) parent.children.push(el);
    else root = el;
    if (!selfClosing) stack.push(el);
  }
  if (!root) return fail('no document element');
  if (stack.length > 0) fail(`<${(stack[stack.length - 1] as MutableElement).qname}> is not closed`);
  return root;
}

// --- helpers for readers of the tree -----------------------------------------------------

export const isElement = (nd: XmlNode): nd is XmlElement => nd.type === 'element';

/** Element children, in order. */
export function elementChildren(el: XmlElement): XmlElement[] {
  return el.children.filter(isElement);
}

/** The concatenated character data of an element that has no element children. */
export function textOf(el: XmlElement): string | undefined {
  if (el.children.some(isElement)) return undefined;
  return el.children.map((c) => (c as XmlText).value).join('');
}

/** Whether an element's character data (outside its child elements) is whitespace only. */
export function onlyWhitespaceText(el: XmlElement): boolean {
  return el.children.every((c) => c.type === 'element' || /^[ \t\n]*$/.test(c.value));
}

/** The attribute with this namespace and local name. */
export function attr(el: XmlElement, local: string, ns = ''): string | undefined {
  return el.attributes.find((a) => a.local === local && a.ns === ns)?.value;
}

// --- Canonical XML 1.1 -----------------------------------------------------------------

const escapeText = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#xD;');
const escapeAttr = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;').replace(/\t/g, '&#x9;').replace(/\n/g, '&#xA;').replace(/\r/g, '&#xD;');
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Inclusive Canonical XML 1.1 (without comments) of the subtree at `el`, leaving out `omit` and
 * its descendants (see the module header). Returns the canonical text; hash its UTF-8 bytes.
 */
export function canonicalize(el: XmlElement, omit?: XmlElement): string {
  const out: string[] = [];
  // Iterative walk: [element, namespaces rendered by its nearest output ancestor] or a close tag.
  type Job = { el: XmlElement; rendered: ReadonlyMap<string, string> } | { close: string } | { text: string };
  const jobs: Job[] = [{ el, rendered: new Map() }];
  while (jobs.length > 0) {
    const job = jobs.pop() as Job;
    if ('close' in job) {
      out.push(`</${job.close}>`);
      continue;
    }
    if ('text' in job) {
      out.push(escapeText(job.text));
      continue;
    }
    const e = job.el;
    const decls: Array<[string, string]> = [];
    for (const [prefix, uri] of e.inScope) {
      const before = job.rendered.get(prefix) ?? '';
      // Default namespace: render it when it differs from the output ancestor's, including
      // xmlns="" undoing a non-empty default; prefixes: when not rendered with this value.
      if (prefix === '' ? uri !== before : job.rendered.get(prefix) !== uri) decls.push([prefix, uri]);
    }
    decls.sort((a, b) => byCodeUnits(a[0], b[0]));
    const attrs = [...e.attributes].sort((a, b) => byCodeUnits(a.ns, b.ns) || byCodeUnits(a.local, b.local));
    let tag = `<${e.qname}`;
    for (const [p, u] of decls) tag += p === '' ? ` xmlns="${escapeAttr(u)}"` : ` xmlns:${p}="${escapeAttr(u)}"`;
    for (const a of attrs) tag += ` ${a.qname}="${escapeAttr(a.value)}"`;
    out.push(`${tag}>`);
    jobs.push({ close: e.qname });
    const rendered = e.inScope;
    for (let k = e.children.length - 1; k >= 0; k--) {
      const c = e.children[k] as XmlNode;
      if (c.type === 'text') jobs.push({ text: c.value });
      else if (c !== omit) jobs.push({ el: c, rendered });
    }
  }
  return out.join('');
}
