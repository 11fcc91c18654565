/**
 * Walks DER elements of structures that were already validated (our own certificates,
 * or CSRs that asn1js has parsed), to slice out raw bytes such as a SubjectPublicKeyInfo
 * without re-encoding them.
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
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buffer[contentStart + i]!;
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
