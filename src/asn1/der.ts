/**
 * A minimal DER writer. Certificates and CSRs on hot paths are assembled from
 * precomputed parts with these helpers instead of building pkijs object trees
 * (~1.3 ms of JavaScript ASN.1 work per certificate); parsing stays with asn1js.
 */

/** Bytes a definite length takes (X.690 8.1.3). */
function lengthSize(length: number): number {
  if (length < 0x80) return 1;
  let size = 1;
  for (let n = length; n > 0; n = Math.floor(n / 256)) size++;
  return size;
}

/** Writes a tag and a definite length at `at`; returns where the content starts. */
function writeHeader(out: Buffer, at: number, tag: number, length: number): number {
  out[at] = tag;
  if (length < 0x80) {
    out[at + 1] = length;
    return at + 2;
  }
  const size = lengthSize(length) - 1;
  out[at + 1] = 0x80 | size;
  for (let i = size, n = length; i > 0; i--, n = Math.floor(n / 256)) out[at + 1 + i] = n & 0xff;
  return at + 2 + size;
}

/**
 * A tag-length-value element around already-encoded content, in one allocation: a CRL of
 * 100,000 entries calls this a few hundred thousand times.
 */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  let length = 0;
  for (const part of content) length += part.length;
  const out = Buffer.allocUnsafe(1 + lengthSize(length) + length);
  let at = writeHeader(out, 0, tag, length);
  for (const part of content) at += part.copy(out, at);
  return out;
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
export const octetString = (value: Buffer): Buffer => tlv(0x04, value);
export const utf8String = (value: string): Buffer => tlv(0x0c, Buffer.from(value, 'utf8'));
export const ia5String = (value: string): Buffer => tlv(0x16, Buffer.from(value, 'ascii'));
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);
export const boolean = (value: boolean): Buffer => Buffer.from([0x01, 0x01, value ? 0xff : 0x00]);

/** BIT STRING with no unused bits (keys, signatures). */
export const bitString = (value: Buffer): Buffer => tlv(0x03, Buffer.from([0]), value);

/** Explicitly tagged context-specific element [n] (constructed). */
export const explicit = (n: number, ...content: Buffer[]): Buffer => tlv(0xa0 | n, ...content);

/** Implicitly tagged context-specific primitive element [n]. */
export const implicitPrimitive = (n: number, value: Buffer): Buffer => tlv(0x80 | n, value);

/** Implicitly tagged context-specific constructed element [n]. */
export const implicitConstructed = (n: number, ...content: Buffer[]): Buffer => tlv(0xa0 | n, ...content);

/** INTEGER from unsigned big-endian magnitude bytes (a leading zero is added when needed). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return trimmed[0]! & 0x80 ? tlv(0x02, ZERO, trimmed) : tlv(0x02, trimmed);
}

const ZERO = Buffer.from([0]);

export const smallInteger = (value: number): Buffer => {
  const bytes: number[] = [];
  let n = value;
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  return unsignedInteger(Buffer.from(bytes));
};

/**
 * Encoded OBJECT IDENTIFIERs by dotted form. Every OID we write is one of our own
 * constants, so this stays small; callers only copy from what it returns.
 */
const encodedOids = new Map<string, Buffer>();

/** OBJECT IDENTIFIER from dotted form, encoded once per OID (certificates, CRLs and OCSP write the same few). */
export function objectIdentifier(dotted: string): Buffer {
  let encoded = encodedOids.get(dotted);
  if (encoded === undefined) {
    encoded = encodeObjectIdentifier(dotted);
    encodedOids.set(dotted, encoded);
  }
  return encoded;
}

function encodeObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [];
  // The first two arcs share one subidentifier, which may itself need several bytes (2.999).
  for (const arc of [40 * arcs[0]! + arcs[1]!, ...arcs.slice(2)]) {
    const chunk: number[] = [];
    let n = arc;
    do {
      chunk.unshift((n & 0x7f) | (chunk.length ? 0x80 : 0));
      n = Math.floor(n / 128);
    } while (n > 0);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/**
 * Time as RFC 5280 4.1.2.5 wants it: UTCTime through 2049, GeneralizedTime from 2050,
 * always in seconds and in Zulu time.
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  return year >= 2050 ? generalizedTime(date) : timeElement(0x17, String(year % 100).padStart(2, '0'), date);
}

/** ENUMERATED with a small non-negative value (CRL reason codes, OCSP status). */
export const enumerated = (value: number): Buffer => tlv(0x0a, Buffer.from([value]));

/** GeneralizedTime in seconds, Zulu (RFC 6960 uses it for every OCSP time). */
export function generalizedTime(date: Date): Buffer {
  return timeElement(0x18, String(date.getUTCFullYear()).padStart(4, '0'), date);
}

const twoDigits = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** A time element: the year as given, then MMDDhhmmssZ. */
function timeElement(tag: number, year: string, date: Date): Buffer {
  const digits =
    year +
    twoDigits(date.getUTCMonth() + 1) +
    twoDigits(date.getUTCDate()) +
    twoDigits(date.getUTCHours()) +
    twoDigits(date.getUTCMinutes()) +
    twoDigits(date.getUTCSeconds()) +
    'Z';
  const out = Buffer.allocUnsafe(2 + digits.length);
  out.write(digits, writeHeader(out, 0, tag, digits.length), 'latin1');
  return out;
}
