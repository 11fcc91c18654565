/**
 * Walks DER elements and slices out raw bytes (a SubjectPublicKeyInfo, the signed part of
 * a CSR) without re-encoding them. Strict: definite, minimal lengths only; on untrusted
 * input, checkWellFormed bounds nesting depth and element count before anything else.
 */

/** One element: its tag and where it and its content sit in the buffer. */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads the element starting at `offset`; throws on anything that is not definite-length DER. */
export function readElement(buffer: Uint8Array, offset = 0): DerElement {
  if (offset + 2 > buffer.length) throw new RangeError('DER element truncated');
  const tag = buffer[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('DER high tag numbers are not supported');
  let length = buffer[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new RangeError('DER length form not supported');
    if (contentStart + count > buffer.length) throw new RangeError('DER length truncated');
    if (buffer[contentStart] === 0) throw new RangeError('DER length is not minimal');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buffer[contentStart + i]!;
    if (length < 0x80) throw new RangeError('DER length is not minimal');
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > buffer.length) throw new RangeError('DER content truncated');
  return { tag, start: offset, contentStart, end };
}

/** The direct children of a constructed element. */
export function childrenOf(buffer: Uint8Array, parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readElement(buffer, offset);
    if (child.end > parent.end) throw new RangeError('DER child overruns its parent');
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** The bytes of an element, header included. */
export const bytesOf = (buffer: Buffer, element: DerElement): Buffer => buffer.subarray(element.start, element.end);

/** The content bytes of an element, header excluded. */
export const contentOf = (buffer: Buffer, element: DerElement): Buffer =>
  buffer.subarray(element.contentStart, element.end);

/** Limits for walking untrusted DER. */
export interface WalkLimits {
  readonly depth: number;
  readonly elements: number;
}

/**
 * Checks that every element inside `element` is well-formed DER, descending into
 * constructed ones, no deeper than `limits.depth` and no more than `limits.elements` in all.
 */
export function checkWellFormed(buffer: Uint8Array, element: DerElement, limits: WalkLimits = { depth: 32, elements: 10_000 }): void {
  let budget = limits.elements;
  const walk = (parent: DerElement, depth: number): void => {
    if (depth > limits.depth) throw new RangeError('DER nested too deeply');
    for (let offset = parent.contentStart; offset < parent.end; ) {
      if (--budget < 0) throw new RangeError('DER has too many elements');
      const child = readElement(buffer, offset);
      if (child.end > parent.end) throw new RangeError('DER child overruns its parent');
      if (child.tag & 0x20) walk(child, depth + 1);
      offset = child.end;
    }
  };
  if (element.tag & 0x20) walk(element, 1);
}

/**
 * Checks that `buffer` is one BER element (definite or indefinite lengths, as CMS allows)
 * holding at most `limits.elements` elements nested at most `limits.depth` deep: a cheap
 * bound to run on client bytes before a full decoder, which can spend ~10 us an element
 * (asn1js). The contents of primitive elements are not looked into: decode without
 * parsing them as embedded ASN.1.
 */
export function checkBerBounds(buffer: Uint8Array, limits: WalkLimits): void {
  let budget = limits.elements;
  /** Walks the element at `offset`, within `limit`; returns where it ends. */
  const walk = (offset: number, limit: number, depth: number): number => {
    if (--budget < 0) throw new RangeError('BER has too many elements');
    if (depth > limits.depth) throw new RangeError('BER nested too deeply');
    const tag = buffer[offset];
    let at = offset + 1;
    if (tag === undefined || at >= limit) throw new RangeError('BER element truncated');
    if ((tag & 0x1f) === 0x1f) {
      // High tag number: base-128 digits, the last without its top bit.
      for (let digits = 1; (buffer[at++]! & 0x80) !== 0; digits++) {
        if (digits >= 4 || at >= limit) throw new RangeError('BER tag too long');
      }
      if (at >= limit) throw new RangeError('BER element truncated');
    }
    const first = buffer[at++]!;
    const constructed = (tag & 0x20) !== 0;
    if (first === 0x80) {
      if (!constructed) throw new RangeError('BER indefinite length on a primitive element');
      for (;;) {
        if (at + 2 > limit) throw new RangeError('BER end of contents missing');
        if (buffer[at] === 0 && buffer[at + 1] === 0) return at + 2;
        at = walk(at, limit, depth + 1);
      }
    }
    let length = first;
    if (first & 0x80) {
      const count = first & 0x7f;
      if (count > 4 || at + count > limit) throw new RangeError('BER length not supported');
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + buffer[at++]!;
    }
    const end = at + length;
    if (end > limit) throw new RangeError('BER content truncated');
    if (constructed) for (let child = at; child < end; ) child = walk(child, end, depth + 1);
    return end;
  };
  if (walk(0, buffer.length, 1) !== buffer.length) throw new RangeError('bytes after the BER element');
}

/** Decodes an OBJECT IDENTIFIER's content to dotted form; refuses padded or empty arcs. */
export function decodeOid(content: Uint8Array): string {
  if (content.length === 0) throw new RangeError('empty OID');
  const arcs: number[] = [];
  let value = 0;
  let fresh = true;
  for (const byte of content) {
    if (fresh && byte === 0x80) throw new RangeError('OID arc is padded');
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new RangeError('OID arc too large');
    fresh = (byte & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0;
    }
  }
  if (!fresh) throw new RangeError('OID ends inside an arc');
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}
