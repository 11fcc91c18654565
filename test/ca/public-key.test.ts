/**
 * Client keys described without native calls: valid keys agree with Node's own reading,
 * malformed ones are csr_key_unsupported before anything native sees them.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { childrenOf, contentOf, readElement } from '../../src/asn1/der-reader.js';
import * as der from '../../src/asn1/der.js';
import { describePublicKey, importCheckedKey } from '../../src/ca/public-key.js';
import { ImprintError } from '../../src/errors.js';

const EC = '1.2.840.10045.2.1';
const P256 = '1.2.840.10045.3.1.7';
const RSA = '1.2.840.113549.1.1.1';

/** Describes an SPKI the way the CSR parser does. */
function describe_(spki: Buffer) {
  const outer = readElement(spki);
  const [algorithm, bits] = childrenOf(spki, outer);
  return describePublicKey(spki, algorithm!, contentOf(spki, bits!).subarray(1));
}

const spkiOf = (algorithm: Buffer, key: Buffer) => der.sequence(algorithm, der.bitString(key));
const ecAlgorithm = (parameters: Buffer) => der.sequence(der.objectIdentifier(EC), parameters);
const rsaAlgorithm = (...parameters: Buffer[]) => der.sequence(der.objectIdentifier(RSA), ...parameters);
const rawInteger = (content: number[]) => der.tlv(0x02, Buffer.from(content));
const rsaKey = (modulus: Buffer, exponent: Buffer) => der.sequence(modulus, exponent);

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
const p256Point = p256.subarray(p256.length - 65);
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
const rsaSpki = rsa2048.export({ type: 'spki', format: 'der' });
const modulus2048 = Buffer.from(rsa2048.export({ format: 'jwk' }).n!, 'base64url');

function codeOf(spki: Buffer): string | undefined {
  try {
    describe_(spki);
  } catch (error) {
    if (error instanceof ImprintError) return error.code;
    throw error;
  }
  return undefined;
}

describe('describePublicKey', () => {
  it.each([
    ['ec/p256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey],
    ['ec/p384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey],
    ['ec/secp256k1', generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey],
    ['rsa/2048', rsa2048],
    ['rsa/3072-e3', generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 3 }).publicKey],
    ['ed25519', generateKeyPairSync('ed25519').publicKey],
  ])('%s agrees with Node', async (_name, key) => {
    const spki = key.export({ type: 'spki', format: 'der' });
    const ours = describe_(spki);
    const details = key.asymmetricKeyDetails!;
    if (key.asymmetricKeyType === 'ec') expect(ours).toEqual({ type: 'ec', curve: details.namedCurve });
    else if (key.asymmetricKeyType === 'rsa') expect(ours).toEqual({ type: 'rsa', bits: details.modulusLength, exponent: details.publicExponent });
    else expect(ours).toEqual({ type: key.asymmetricKeyType });
  });

  it('imports only what it could describe as P-256/P-384 or RSA', async () => {
    const ec = describe_(p256);
    expect((await importCheckedKey(ec, p256, p256Point))?.asymmetricKeyType).toBe('ec');
    expect((await importCheckedKey(describe_(rsaSpki), rsaSpki, Buffer.alloc(0)))?.asymmetricKeyType).toBe('rsa');
    expect(await importCheckedKey({ type: 'ec', curve: 'secp256k1' }, p256, p256Point)).toBeUndefined();
    expect(await importCheckedKey({ type: 'ed25519' }, p256, p256Point)).toBeUndefined();
  });

  const offCurve = Buffer.from(p256Point);
  offCurve[64] = offCurve[64]! ^ 1;
  const p = Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex');
  it.each([
    ['ec/infinity', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.from([0]))],
    ['ec/empty', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.alloc(0))],
    ['ec/compressed', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.concat([Buffer.from([2]), p256Point.subarray(1, 33)]))],
    ['ec/hybrid', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.concat([Buffer.from([6]), p256Point.subarray(1)]))],
    ['ec/off-curve', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), offCurve)],
    ['ec/x-equals-p', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.concat([Buffer.from([4]), p, p256Point.subarray(33)]))],
    ['ec/origin', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.concat([Buffer.from([4]), Buffer.alloc(64)]))],
    ['ec/short', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), p256Point.subarray(0, 64))],
    ['ec/long', spkiOf(ecAlgorithm(der.objectIdentifier(P256)), Buffer.concat([p256Point, Buffer.from([0])]))],
    ['ec/explicit-parameters', spkiOf(ecAlgorithm(der.sequence(der.smallInteger(1))), p256Point)],
    ['ec/implicit-ca', spkiOf(ecAlgorithm(der.nullValue()), p256Point)],
    ['ec/no-parameters', spkiOf(der.sequence(der.objectIdentifier(EC)), p256Point)],
    ['rsa/no-null', spkiOf(rsaAlgorithm(), rsaKey(der.unsignedInteger(modulus2048), der.smallInteger(65537)))],
    ['rsa/non-null-parameters', spkiOf(rsaAlgorithm(der.smallInteger(0)), rsaKey(der.unsignedInteger(modulus2048), der.smallInteger(65537)))],
    ['rsa/not-a-sequence', spkiOf(rsaAlgorithm(der.nullValue()), Buffer.from([0x02, 0x01, 0x03]))],
    ['rsa/trailing-bytes', spkiOf(rsaAlgorithm(der.nullValue()), Buffer.concat([rsaKey(der.unsignedInteger(modulus2048), der.smallInteger(65537)), Buffer.from([0])]))],
    ['rsa/three-integers', spkiOf(rsaAlgorithm(der.nullValue()), der.sequence(der.unsignedInteger(modulus2048), der.smallInteger(65537), der.smallInteger(1)))],
    ['rsa/negative-modulus', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.tlv(0x02, modulus2048), der.smallInteger(65537)))],
    ['rsa/padded-modulus', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.tlv(0x02, Buffer.concat([Buffer.from([0, 0]), modulus2048])), der.smallInteger(65537)))],
    ['rsa/even-modulus', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(Buffer.concat([modulus2048.subarray(0, 255), Buffer.from([2])])), der.smallInteger(65537)))],
    ['rsa/exponent-1', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(modulus2048), der.smallInteger(1)))],
    ['rsa/exponent-0', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(modulus2048), rawInteger([0])))],
    ['rsa/exponent-even', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(modulus2048), der.smallInteger(65536)))],
    ['rsa/exponent-negative', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(modulus2048), rawInteger([0xff])))],
    ['rsa/exponent-empty', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(modulus2048), der.tlv(0x02, Buffer.alloc(0))))],
    ['rsa/modulus-16385-bits', spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(Buffer.concat([Buffer.from([1]), Buffer.alloc(2048, 0xff)])), der.smallInteger(65537)))],
  ])('%s is csr_key_unsupported', (_name, spki) => {
    expect(codeOf(spki)).toBe('csr_key_unsupported');
  });

  it.each([
    ['rsa-pss', '1.2.840.113549.1.1.10', 'rsa-pss'],
    ['dsa', '1.2.840.10040.4.1', 'dsa'],
    ['x25519', '1.3.101.110', 'x25519'],
    ['unknown', '1.2.3.4', '1.2.3.4'],
  ])('%s is described, not imported', (_name, oid, type) => {
    expect(describe_(spkiOf(der.sequence(der.objectIdentifier(oid)), Buffer.from([0])))).toEqual({ type });
  });

  it('reads the size of an RSA key by its bits, not its bytes', () => {
    const odd = Buffer.concat([Buffer.from([0x01]), modulus2048]); // 2049 bits
    expect(describe_(spkiOf(rsaAlgorithm(der.nullValue()), rsaKey(der.unsignedInteger(odd), der.smallInteger(65537))))).toEqual({
      type: 'rsa',
      bits: 2049,
      exponent: 65537n,
    });
    expect(createPublicKey({ key: rsaSpki, format: 'der', type: 'spki' }).asymmetricKeyDetails?.modulusLength).toBe(2048);
  });
});
