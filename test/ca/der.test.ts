/** The DER writer against known encodings and against asn1js as an independent decoder. */
import * as asn1js from 'asn1js';
import { describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { checkBerBounds, checkWellFormed, childrenOf, decodeOid, readElement } from '../../src/asn1/der-reader.js';

const hex = (buffer: Buffer) => buffer.toString('hex');

describe('der writer', () => {
  it.each([
    { name: 'oid/ecdsa-with-SHA256', value: der.objectIdentifier('1.2.840.10045.4.3.2'), expected: '06082a8648ce3d040302' },
    { name: 'oid/large-arc', value: der.objectIdentifier('1.3.6.1.4.1.311.21.20'), expected: '06092b0601040182371514' },
    { name: 'integer/zero', value: der.smallInteger(0), expected: '020100' },
    { name: 'integer/128-gets-leading-zero', value: der.smallInteger(128), expected: '02020080' },
    { name: 'integer/strips-leading-zeros', value: der.unsignedInteger(Buffer.from([0, 0, 1])), expected: '020101' },
    { name: 'time/utc-before-2050', value: der.time(new Date('2049-12-31T23:59:59.999Z')), expected: hex(Buffer.concat([Buffer.from([0x17, 13]), Buffer.from('491231235959Z')])) },
    { name: 'time/generalized-from-2050', value: der.time(new Date('2050-01-01T00:00:00Z')), expected: hex(Buffer.concat([Buffer.from([0x18, 15]), Buffer.from('20500101000000Z')])) },
    { name: 'integer/high-bit-gets-leading-zero', value: der.unsignedInteger(Buffer.from([0x80, 0x01])), expected: '0203008001' },
    { name: 'time/utc-pads-every-field', value: der.time(new Date('2005-01-02T03:04:05.678Z')), expected: hex(Buffer.concat([Buffer.from([0x17, 13]), Buffer.from('050102030405Z')])) },
    { name: 'time/generalized-pads-every-field', value: der.generalizedTime(new Date('2026-03-04T05:06:07Z')), expected: hex(Buffer.concat([Buffer.from([0x18, 15]), Buffer.from('20260304050607Z')])) },
    { name: 'sequence/of-several', value: der.sequence(der.boolean(true), der.nullValue()), expected: '30050101ff0500' },
    { name: 'boolean/true', value: der.boolean(true), expected: '0101ff' },
    { name: 'null', value: der.nullValue(), expected: '0500' },
  ])('$name', ({ value, expected }) => {
    expect(hex(value)).toBe(expected);
  });

  it.each([0, 127, 128, 255, 256, 65_535, 70_000, 16_777_216])('length %i round-trips through asn1js and our reader', (length) => {
    const encoded = der.octetString(Buffer.alloc(length, 7));
    const decoded = asn1js.fromBER(encoded);
    expect(decoded.offset).toBe(encoded.length);
    expect((decoded.result as asn1js.OctetString).valueBlock.valueHexView.length).toBe(length);
    const element = readElement(encoded);
    expect(element.end - element.contentStart).toBe(length);
  });

  it('reader refuses truncated and indefinite-length input', () => {
    expect(() => readElement(Buffer.from([0x30, 0x05, 0x01]))).toThrow(RangeError);
    expect(() => readElement(Buffer.from([0x30, 0x80, 0x00, 0x00]))).toThrow(RangeError);
    expect(() => childrenOf(Buffer.from([0x30, 0x03, 0x04, 0x05, 0x00]), readElement(Buffer.from([0x30, 0x03, 0x04, 0x05, 0x00])))).toThrow(RangeError);
  });
});

describe('DER reader on untrusted input', () => {
  it('decodes OIDs and refuses padded or unterminated arcs', () => {
    expect(decodeOid(der.objectIdentifier('1.2.840.10045.4.3.2').subarray(2))).toBe('1.2.840.10045.4.3.2');
    expect(decodeOid(der.objectIdentifier('2.999.3').subarray(2))).toBe('2.999.3');
    expect(() => decodeOid(Buffer.from([0x2a, 0x80, 0x01]))).toThrow(/padded/);
    expect(() => decodeOid(Buffer.from([0x2a, 0x86]))).toThrow(/ends inside/);
    expect(() => decodeOid(Buffer.alloc(0))).toThrow(/empty/);
  });

  it('refuses non-minimal and indefinite lengths', () => {
    expect(() => readElement(Buffer.from([0x04, 0x81, 0x05, 1, 2, 3, 4, 5]))).toThrow(/not minimal/);
    expect(() => readElement(Buffer.from([0x04, 0x82, 0x00, 0x80, ...Buffer.alloc(128)]))).toThrow(/not minimal/);
    expect(() => readElement(Buffer.from([0x30, 0x80, 0x00, 0x00]))).toThrow(/not supported/);
  });

  it('bounds nesting depth and element count', () => {
    let deep: Buffer = der.sequence();
    for (let i = 0; i < 40; i++) deep = der.sequence(deep);
    expect(() => checkWellFormed(deep, readElement(deep))).toThrow(/too deeply/);
    const wide = der.sequence(...Array.from({ length: 11_000 }, () => der.nullValue()));
    expect(() => checkWellFormed(wide, readElement(wide))).toThrow(/too many/);
    const fine = der.sequence(der.sequence(der.nullValue()), der.smallInteger(5));
    expect(() => checkWellFormed(fine, readElement(fine))).not.toThrow();
  });

  it('bounds BER the same way, indefinite lengths and high tag numbers included', () => {
    const limits = { depth: 8, elements: 100 };
    const bytes = (...values: number[]) => Buffer.from(values);
    // SEQUENCE (indefinite) { NULL, [APPLICATION 200] (high tag) OCTET "a", SEQUENCE {} } end
    const fine = bytes(0x30, 0x80, 0x05, 0x00, 0x5f, 0x81, 0x48, 0x01, 0x61, 0x30, 0x00, 0x00, 0x00);
    expect(() => checkBerBounds(fine, limits)).not.toThrow();
    expect(() => checkBerBounds(der.sequence(der.sequence(der.nullValue()), der.smallInteger(5)), limits)).not.toThrow();
    // A non-minimal length is BER, not an error here.
    expect(() => checkBerBounds(bytes(0x30, 0x83, 0x00, 0x00, 0x02, 0x05, 0x00), limits)).not.toThrow();

    const wide = der.sequence(...Array.from({ length: 100 }, () => der.nullValue()));
    expect(() => checkBerBounds(wide, limits)).toThrow(/too many/);
    const wideIndefinite = Buffer.concat([bytes(0x30, 0x80), ...Array.from({ length: 100 }, () => bytes(0x05, 0x00)), bytes(0, 0)]);
    expect(() => checkBerBounds(wideIndefinite, limits)).toThrow(/too many/);
    expect(() => checkBerBounds(Buffer.concat(Array.from({ length: 9 }, () => bytes(0x30, 0x80))), limits)).toThrow(/too deeply/);
    expect(() => checkBerBounds(bytes(0x30, 0x80, 0x05, 0x00), limits)).toThrow(/end of contents missing/);
    expect(() => checkBerBounds(bytes(0x04, 0x80, 0x00, 0x00), limits)).toThrow(/primitive/);
    expect(() => checkBerBounds(bytes(0x30, 0x03, 0x05, 0x00), limits)).toThrow(/truncated/);
    expect(() => checkBerBounds(bytes(0x30, 0x00, 0x05), limits)).toThrow(/bytes after/);
    expect(() => checkBerBounds(bytes(0x30, 0x85, 1, 2, 3, 4, 5), limits)).toThrow(/not supported/);
    expect(() => checkBerBounds(bytes(0x1f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00), limits)).toThrow(/tag too long/);
    expect(() => checkBerBounds(bytes(0x1f), limits)).toThrow(/truncated/);
    expect(() => checkBerBounds(bytes(), limits)).toThrow(/truncated/);
  });
});
