/**
 * Public keys that came from a client, read in our own code before any native call sees
 * them. Node 20's `KeyObject.asymmetricKeyDetails` aborts the whole process (a native
 * assertion, not an exception) on an EC point at infinity, and other native paths may do
 * the same on malformed keys, so a key becomes a KeyObject only through `importCheckedKey`,
 * and only after `describePublicKey` has checked every byte of it: an EC key is a named
 * P-256/P-384 curve with an uncompressed point on that curve (RFC 5480 2.1.1, 2.2), an
 * RSA key is rsaEncryption with NULL parameters and a minimal, positive, odd modulus and
 * exponent (RFC 8017 A.1.1, RFC 3279 2.3.1). Which of those keys policy accepts is decided
 * elsewhere; this module only says what a key is.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { bytesOf, childrenOf, contentOf, decodeOid, readElement, type DerElement } from '../asn1/der-reader.js';
import { ImprintError } from '../errors.js';
import { OID } from './oids.js';

/** What a client's key is, as far as policy cares. */
export type KeyDescription =
  | { readonly type: 'ec'; readonly curve: string }
  | { readonly type: 'rsa'; readonly bits: number; readonly exponent: bigint }
  | { readonly type: string };

/** Short Weierstrass curves y^2 = x^3 - 3x + b (mod p) we can check a point against. */
interface NamedCurve {
  readonly name: string;
  readonly webName: 'P-256' | 'P-384';
  readonly size: number;
  readonly p: bigint;
  readonly b: bigint;
}

const CURVES: Readonly<Record<string, NamedCurve>> = {
  // FIPS 186-4 D.1.2.3 and D.1.2.4.
  [OID.prime256v1]: {
    name: 'prime256v1',
    webName: 'P-256',
    size: 32,
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  },
  [OID.secp384r1]: {
    name: 'secp384r1',
    webName: 'P-384',
    size: 48,
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  },
};

/** Names for the key and curve OIDs a refusal is worth naming in. */
const KNOWN_NAMES: Readonly<Record<string, string>> = {
  '1.3.132.0.10': 'secp256k1',
  '1.3.132.0.35': 'secp521r1',
  '1.3.36.3.3.2.8.1.1.7': 'brainpoolP256r1',
  '1.3.36.3.3.2.8.1.1.11': 'brainpoolP384r1',
  '1.3.36.3.3.2.8.1.1.13': 'brainpoolP512r1',
  '1.3.101.110': 'x25519',
  '1.3.101.111': 'x448',
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448',
  '1.2.840.10040.4.1': 'dsa',
  '1.2.840.10046.2.1': 'dh',
  '1.2.840.113549.1.3.1': 'dh',
  '1.2.840.113549.1.1.10': 'rsa-pss',
};
const nameOf = (oid: string) => KNOWN_NAMES[oid] ?? oid;

/** The largest RSA modulus OpenSSL verifies with; anything larger is no key of ours. */
const MAX_RSA_BITS = 16_384;
const DER_NULL = Buffer.from([0x05, 0x00]);

const invalid = (message: string) => new ImprintError('csr_key_unsupported', message);

const toBigInt = (bytes: Buffer): bigint => (bytes.length ? BigInt(`0x${bytes.toString('hex')}`) : 0n);

/** True when (x, y) is a point of the curve: both coordinates reduced, y^2 = x^3 - 3x + b. */
function onCurve(curve: NamedCurve, point: Buffer): boolean {
  const x = toBigInt(point.subarray(1, 1 + curve.size));
  const y = toBigInt(point.subarray(1 + curve.size));
  if (x >= curve.p || y >= curve.p) return false;
  const { p } = curve;
  return (y * y) % p === (((x * x % p) * x - 3n * x + curve.b) % p + p) % p;
}

function describeEcKey(der: Buffer, parameters: DerElement | undefined, point: Buffer): KeyDescription {
  if (parameters?.tag !== 0x06) {
    // ECParameters as a SEQUENCE (explicit curve) or NULL (implicitCA): RFC 5480 2.1.1 forbids both.
    throw invalid('EC keys must name their curve; explicit or implicit curve parameters are not accepted');
  }
  const oid = decodeOid(contentOf(der, parameters));
  const curve = CURVES[oid];
  if (!curve) return { type: 'ec', curve: nameOf(oid) };
  if (point.length === 0 || point[0] === 0x00) throw invalid('EC public key is the point at infinity');
  if (point[0] !== 0x04) throw invalid('EC public key must be an uncompressed point (04 || x || y)');
  if (point.length !== 1 + 2 * curve.size) throw invalid(`EC public key has the wrong length for ${curve.webName}`);
  if (!onCurve(curve, point)) throw invalid(`EC public key is not a point on ${curve.webName}`);
  return { type: 'ec', curve: curve.name };
}

/** A DER INTEGER that is positive and minimally encoded: its magnitude. */
function positiveInteger(der: Buffer, element: DerElement | undefined, what: string): Buffer {
  if (element?.tag !== 0x02) throw invalid(`RSA public key ${what} is not an INTEGER`);
  const content = contentOf(der, element);
  if (content.length === 0 || content[0]! & 0x80) throw invalid(`RSA public key ${what} is not positive`);
  if (content[0] === 0 && (content.length === 1 || (content[1]! & 0x80) === 0)) {
    throw invalid(`RSA public key ${what} is not minimally encoded`);
  }
  return content[0] === 0 ? content.subarray(1) : content;
}

const bitLength = (magnitude: Buffer): number => (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]!));

function describeRsaKey(der: Buffer, parameters: DerElement | undefined, extra: number, keyBytes: Buffer): KeyDescription {
  if (!parameters || extra || !bytesOf(der, parameters).equals(DER_NULL)) {
    throw invalid('rsaEncryption keys must have NULL parameters');
  }
  // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, nothing after it.
  let sequence: DerElement;
  let parts: DerElement[];
  try {
    sequence = readElement(keyBytes);
    parts = sequence.tag === 0x30 && sequence.end === keyBytes.length ? childrenOf(keyBytes, sequence) : [];
  } catch {
    parts = [];
  }
  if (parts.length !== 2) throw invalid('RSA public key is not an RSAPublicKey');
  const modulus = positiveInteger(keyBytes, parts[0], 'modulus');
  const exponent = positiveInteger(keyBytes, parts[1], 'exponent');
  const bits = bitLength(modulus);
  if (bits > MAX_RSA_BITS || exponent.length > 8) throw invalid(`RSA public key is larger than ${MAX_RSA_BITS} bits`);
  const e = toBigInt(exponent);
  if ((modulus[modulus.length - 1]! & 1) === 0 || bits < 16) throw invalid('RSA public key modulus is not valid');
  if (e < 3n || (e & 1n) === 0n) throw invalid('RSA public key exponent is not valid');
  return { type: 'rsa', bits, exponent: e };
}

/**
 * Describes the key of a SubjectPublicKeyInfo (already known to be a SEQUENCE of an
 * AlgorithmIdentifier SEQUENCE and a BIT STRING with no unused bits); throws
 * csr_key_unsupported for a key that is not valid. No native call reads the key here.
 */
export function describePublicKey(der: Buffer, algorithm: DerElement, key: Buffer): KeyDescription {
  const [oidElement, parameters, ...extra] = childrenOf(der, algorithm);
  if (oidElement?.tag !== 0x06) throw invalid('key AlgorithmIdentifier has no OID');
  const oid = decodeOid(contentOf(der, oidElement));
  if (oid === OID.ecPublicKey) {
    if (extra.length) throw invalid('key AlgorithmIdentifier has extra elements');
    return describeEcKey(der, parameters, key);
  }
  if (oid === OID.rsaEncryption) return describeRsaKey(der, parameters, extra.length, key);
  return { type: nameOf(oid) };
}

/** The curve a described EC key is on, when it is one we can import. */
const curveNamed = (name: string) => Object.values(CURVES).find((each) => each.name === name);

/**
 * How an EC point goes in. On OpenSSL 3.0 (Node 20) a JWK of its coordinates costs what
 * WebCrypto's raw import does (~70 us; SPKI DER ~120 us); from OpenSSL 3.5 (Node 22, 24)
 * the SPKI DER is the cheaper one (~16 us; JWK ~20 us, raw ~47 us). Either way OpenSSL reads
 * only bytes `describePublicKey` has checked.
 */
const EC_AS_JWK = /^3\.0\./.test(process.versions.openssl);

/**
 * The key as a KeyObject, for a key `describePublicKey` described as EC P-256/P-384 or
 * RSA; undefined for any other.
 */
export function importCheckedKey(description: KeyDescription, subjectPublicKeyInfo: Buffer, key: Buffer): KeyObject | undefined {
  if (description.type === 'ec' && 'curve' in description) {
    const curve = curveNamed(description.curve);
    if (!curve) return undefined;
    if (!EC_AS_JWK) return createPublicKey({ key: subjectPublicKeyInfo, format: 'der', type: 'spki' });
    const x = key.subarray(1, 1 + curve.size).toString('base64url');
    const y = key.subarray(1 + curve.size).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: curve.webName, x, y }, format: 'jwk' });
  }
  if (description.type === 'rsa') return createPublicKey({ key: subjectPublicKeyInfo, format: 'der', type: 'spki' });
  return undefined;
}
