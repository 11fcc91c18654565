/**
 * A minimal DER writer. Certificates and CSRs on hot paths are assembled from
 * precomputed parts with these helpers instead of building pkijs object trees
 * (~1.3 ms of JavaScript ASN.1 work per certificate); parsing stays with asn1js.
 */

/** Encodes a definite length (X.690 8.1.3). */
function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** A tag-length-value element around already-encoded content. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
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
  const body = trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return tlv(0x02, body);
}

export const smallInteger = (value: number): Buffer => {
  const bytes: number[] = [];
  let n = value;
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  return unsignedInteger(Buffer.from(bytes));
};

/** OBJECT IDENTIFIER from dotted form. */
export function objectIdentifier(dotted: string): Buffer {
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
  if (date.getUTCFullYear() >= 2050) return generalizedTime(date);
  const digits = date.toISOString().slice(2, 19).replace(/[-T:]/g, '') + 'Z';
  return tlv(0x17, Buffer.from(digits, 'ascii'));
}

/** ENUMERATED with a small non-negative value (CRL reason codes, OCSP status). */
export const enumerated = (value: number): Buffer => tlv(0x0a, Buffer.from([value]));

/** GeneralizedTime in seconds, Zulu (RFC 6960 uses it for every OCSP time). */
export function generalizedTime(date: Date): Buffer {
  const digits = date.toISOString().slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  return tlv(0x18, Buffer.from(digits, 'ascii'));
}
