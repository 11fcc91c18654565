/**
 * Hostile public-key encodings against `imprint serve --workers 2` run as a real process
 * tree. Node 20's `KeyObject.asymmetricKeyDetails` aborts the whole process (SIGABRT, a
 * native assertion, not an exception) on an EC point at infinity, and other native paths
 * may do the same on other malformed keys, so every SubjectPublicKeyInfo below goes in a
 * CSR to POST /v1/enroll (a fresh token each) and to POST /v1/renew (mTLS as an enrolled
 * device), and odd but usable keys go in client certificates presented over TLS.
 *
 * Every answer must be a 4xx JSON error with a known code (or, for a client certificate,
 * a refused handshake), and the processes recorded before the corpus must be the ones
 * running after each input and each group: a worker that died and was replaced by the
 * primary answers just as well as before, so only its pid tells.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createDiffieHellmanGroup, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { ERROR_STATUS } from '../../src/errors.js';
import type { ServerProcess } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { forgeCsr, pemOf } from '../helpers/csr-forge.js';
import { call } from '../helpers/https.js';
import { opensslCsr, tempDir } from '../helpers/openssl.js';
import { isRunning, processChanges, serverPids, settledPids, waitForWorkers, type ServerPids } from '../helpers/process-tree.js';
import { spawnTestServer } from '../helpers/server.js';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const work = tempDir('imprint-key-encodings-');
const dataDir = join(work, 'data');
const SERVE_ARGS = ['--workers', '2', '--rate-limit', 'off'];
const WORKERS = 2;
const DEVICE_ID = 'key-encodings-device';

const KNOWN_CODES = new Set(Object.keys(ERROR_STATUS));
/** What a CSR whose key we cannot or will not take may be answered with. */
const CSR_CODES = new Set(['csr_key_unsupported', 'csr_malformed', 'csr_signature_invalid']);
/** A client certificate we did not issue; "required" when the client chose to send none. */
const CLIENT_CERT_CODES = new Set(['client_cert_invalid', 'client_cert_required']);

// ---------------------------------------------------------------------------------------
// DER for keys
// ---------------------------------------------------------------------------------------

const KEY_OID = {
  ec: '1.2.840.10045.2.1',
  primeField: '1.2.840.10045.1.1',
  characteristicTwoField: '1.2.840.10045.1.2',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  p521: '1.3.132.0.35',
  secp256k1: '1.3.132.0.10',
  secp224r1: '1.3.132.0.33',
  brainpoolP256r1: '1.3.36.3.3.2.8.1.1.7',
  sm2: '1.2.156.10197.1.301',
  rsa: '1.2.840.113549.1.1.1',
  rsaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha256: '2.16.840.1.101.3.4.2.1',
  dsa: '1.2.840.10040.4.1',
  dhPkcs3: '1.2.840.113549.1.3.1',
  dhX942: '1.2.840.10046.2.1',
  x25519: '1.3.101.110',
  x448: '1.3.101.111',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
} as const;

const oid = der.objectIdentifier;
const algorithm = (id: string, ...parameters: Buffer[]): Buffer => der.sequence(oid(id), ...parameters);
/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING } (RFC 5280 4.1). */
const spkiOf = (algorithmIdentifier: Buffer, key: Buffer): Buffer => der.sequence(algorithmIdentifier, der.bitString(key));
/** A BIT STRING with the unused-bits count of choice. */
const bitStringWithUnused = (unused: number, content: Buffer): Buffer => der.tlv(0x03, Buffer.from([unused]), content);
/** An INTEGER with exactly these content bytes: negative or non-minimal on purpose. */
const rawInteger = (content: Buffer): Buffer => der.tlv(0x02, content);
const integer = (value: bigint): Buffer => der.unsignedInteger(bytesOf(value));
const bytesOf = (value: bigint, size = 0): Buffer => {
  const hex = value.toString(16);
  return Buffer.from(hex.padStart(Math.max(size * 2, hex.length + (hex.length % 2)), '0'), 'hex');
};
const fromBytes = (bytes: Buffer): bigint => BigInt(`0x${bytes.toString('hex') || '0'}`);
/** SEQUENCE nested `depth` times around `inner`. */
const nested = (depth: number, inner: Buffer = Buffer.alloc(0)): Buffer => {
  let out = inner;
  for (let i = 0; i < depth; i++) out = der.sequence(out);
  return out;
};

const ecSpki = (curve: string, point: Buffer): Buffer => spkiOf(algorithm(KEY_OID.ec, oid(curve)), point);
const exportSpki = (key: KeyObject): Buffer => key.export({ type: 'spki', format: 'der' });

/** An EC key pair and its point's coordinates (`size` bytes each), read from the end of its SPKI. */
function ecKey(namedCurve: string, size: number) {
  const pair = generateKeyPairSync('ec', { namedCurve });
  const spki = exportSpki(pair.publicKey);
  const uncompressed = spki.subarray(spki.length - 1 - 2 * size);
  if (uncompressed[0] !== 4) throw new Error(`${namedCurve}: the SPKI does not end with an uncompressed point`);
  const x = uncompressed.subarray(1, 1 + size);
  const y = uncompressed.subarray(1 + size);
  return { privateKey: pair.privateKey, spki, x, y, uncompressed };
}
const compressed = (x: Buffer, y: Buffer, flipParity = false): Buffer => Buffer.concat([Buffer.from([0x02 | ((y[y.length - 1]! & 1) ^ (flipParity ? 1 : 0))]), x]);
const hybrid = (x: Buffer, y: Buffer, flipParity = false): Buffer => Buffer.concat([Buffer.from([0x06 | ((y[y.length - 1]! & 1) ^ (flipParity ? 1 : 0))]), x, y]);

/** P-256, FIPS 186-4 D.1.2.3: y^2 = x^3 - 3x + b over GF(p), base point G of order n. */
const P256 = {
  p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
  n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
};
const field = (value: bigint): Buffer => bytesOf(value, 32);

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  for (let b = base % modulus, e = exponent; e > 0n; e >>= 1n, b = (b * b) % modulus) if (e & 1n) result = (result * b) % modulus;
  return result;
}

/** The smallest x for which no P-256 point exists: x^3 - 3x + b is not a square mod p. */
function p256NonResidueX(): bigint {
  const { p, b } = P256;
  for (let x = 1n; ; x++) {
    const rhs = (((x * x * x - 3n * x + b) % p) + p) % p;
    if (modPow(rhs, (p - 1n) / 2n, p) === p - 1n) return x;
  }
}

/** Explicit P-256 ECParameters (RFC 3279 2.3.5), each field replaceable. */
function explicitP256(parts: { version?: Buffer; fieldId?: Buffer; a?: Buffer; b?: Buffer; base?: Buffer; order?: Buffer; cofactor?: Buffer | null } = {}): Buffer {
  return der.sequence(
    parts.version ?? der.smallInteger(1),
    parts.fieldId ?? der.sequence(oid(KEY_OID.primeField), integer(P256.p)),
    der.sequence(der.octetString(parts.a ?? field(P256.p - 3n)), der.octetString(parts.b ?? field(P256.b))),
    der.octetString(parts.base ?? Buffer.concat([Buffer.from([4]), field(P256.gx), field(P256.gy)])),
    parts.order ?? integer(P256.n),
    ...(parts.cofactor === null ? [] : [parts.cofactor ?? der.smallInteger(1)]),
  );
}
const explicitSpki = (parameters: Buffer, point: Buffer): Buffer => spkiOf(algorithm(KEY_OID.ec, parameters), point);

/** Random magnitude of exactly `bits` bits, odd (RSA moduli, DSA and DH primes). */
function oddNumber(bits: number): Buffer {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const topBits = bits % 8 || 8;
  bytes[0] = (bytes[0]! & ((1 << topBits) - 1)) | (1 << (topBits - 1));
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! | 1;
  return bytes;
}

const rsaPublicKey = (modulus: Buffer, exponent: Buffer): Buffer => der.sequence(der.unsignedInteger(modulus), der.unsignedInteger(exponent));
const rsaSpki = (key: Buffer, parameters: Buffer[] = [der.nullValue()], id: string = KEY_OID.rsa): Buffer => spkiOf(algorithm(id, ...parameters), key);
const E65537 = Buffer.from([1, 0, 1]);

/** RSASSA-PSS-params (RFC 4055 3.1) for SHA-256, MGF1-SHA-256, the salt length given. */
const pssParameters = (saltLength: Buffer = der.smallInteger(32), trailer: Buffer[] = []): Buffer =>
  der.sequence(
    der.explicit(0, algorithm(KEY_OID.sha256, der.nullValue())),
    der.explicit(1, algorithm(KEY_OID.mgf1, algorithm(KEY_OID.sha256, der.nullValue()))),
    der.explicit(2, saltLength),
    ...trailer,
  );

const dsaSpki = (parameters: Buffer[], y: Buffer): Buffer => spkiOf(algorithm(KEY_OID.dsa, ...parameters), der.unsignedInteger(y));

// ---------------------------------------------------------------------------------------
// The corpus: one SubjectPublicKeyInfo per case, and the key that signs the CSR (its own
// where we hold it, so that the key is what decides; a signature that cannot verify is fine)
// ---------------------------------------------------------------------------------------

/** One key of the corpus. */
interface KeyCase {
  readonly name: string;
  readonly spki: Buffer;
  /** Signs the CSR; default: the forge's shared P-256 key. */
  readonly signer?: KeyObject;
}

const p256 = ecKey('P-256', 32);
const p256b = ecKey('P-256', 32);
const p384 = ecKey('P-384', 48);
const nonResidueX = field(p256NonResidueX());
const infinity = Buffer.from([0x00]);

const EC_POINTS: KeyCase[] = [
  { name: 'key/p256-infinity', spki: ecSpki(KEY_OID.p256, infinity) },
  { name: 'key/p384-infinity', spki: ecSpki(KEY_OID.p384, infinity) },
  { name: 'key/p256-infinity-with-padding', spki: ecSpki(KEY_OID.p256, Buffer.alloc(65)) },
  { name: 'key/p256-empty-bit-string', spki: ecSpki(KEY_OID.p256, Buffer.alloc(0)) },
  { name: 'key/p256-compressed', spki: ecSpki(KEY_OID.p256, compressed(p256.x, p256.y)), signer: p256.privateKey },
  { name: 'key/p256-compressed-other-prefix', spki: ecSpki(KEY_OID.p256, compressed(p256b.x, p256b.y, true)), signer: p256b.privateKey },
  { name: 'key/p256-compressed-x-not-on-curve', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([2]), nonResidueX])) },
  { name: 'key/p384-compressed', spki: ecSpki(KEY_OID.p384, compressed(p384.x, p384.y)), signer: p384.privateKey },
  { name: 'key/p256-hybrid', spki: ecSpki(KEY_OID.p256, hybrid(p256.x, p256.y)), signer: p256.privateKey },
  { name: 'key/p256-hybrid-wrong-parity', spki: ecSpki(KEY_OID.p256, hybrid(p256b.x, p256b.y, true)), signer: p256b.privateKey },
  { name: 'key/p256-off-curve-random', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), randomBytes(64)])) },
  { name: 'key/p256-off-curve-by-one', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), p256.x, field(fromBytes(p256.y) ^ 1n)])), signer: p256.privateKey },
  { name: 'key/p384-off-curve-random', spki: ecSpki(KEY_OID.p384, Buffer.concat([Buffer.from([4]), randomBytes(96)])) },
  { name: 'key/p256-x-equals-p', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), field(P256.p), field(P256.gy)])) },
  { name: 'key/p256-y-equals-p', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), field(P256.gx), field(P256.p)])) },
  { name: 'key/p256-coordinates-all-ff', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 0xff)])) },
  { name: 'key/p256-one-byte-short', spki: ecSpki(KEY_OID.p256, p256.uncompressed.subarray(0, 64)) },
  { name: 'key/p256-one-byte-long', spki: ecSpki(KEY_OID.p256, Buffer.concat([p256.uncompressed, Buffer.from([0])])), signer: p256.privateKey },
  { name: 'key/p256-prefix-only', spki: ecSpki(KEY_OID.p256, Buffer.from([4])) },
  { name: 'key/p256-x-only', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), p256.x])) },
  { name: 'key/p256-point-zero-zero', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), Buffer.alloc(64)])) },
  { name: 'key/p384-point-zero-zero', spki: ecSpki(KEY_OID.p384, Buffer.concat([Buffer.from([4]), Buffer.alloc(96)])) },
  { name: 'key/p256-prefix-05', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([5]), p256.x, p256.y])) },
  { name: 'key/p256-prefix-01', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([1]), p256.x])) },
  { name: 'key/p256-oid-with-p384-point', spki: ecSpki(KEY_OID.p256, p384.uncompressed), signer: p384.privateKey },
  { name: 'key/p384-oid-with-p256-point', spki: ecSpki(KEY_OID.p384, p256.uncompressed), signer: p256.privateKey },
  { name: 'key/p256-generator', spki: ecSpki(KEY_OID.p256, Buffer.concat([Buffer.from([4]), field(P256.gx), field(P256.gy)])) },
];

// What `openssl ecparam -param_enc explicit` makes: the parameters carry the curve's seed too.
const opensslExplicitPem = execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-param_enc', 'explicit', '-genkey', '-noout'], { encoding: 'utf8' });
const opensslExplicitSpki = execFileSync('openssl', ['ec', '-pubout', '-outform', 'DER'], { input: opensslExplicitPem, stdio: ['pipe', 'pipe', 'ignore'] });

const EC_PARAMETERS: KeyCase[] = [
  { name: 'key/explicit-p256', spki: explicitSpki(explicitP256(), p256.uncompressed), signer: p256.privateKey },
  { name: 'key/explicit-p256-openssl', spki: opensslExplicitSpki, signer: createPrivateKey(opensslExplicitPem) },
  { name: 'key/explicit-p256-no-cofactor', spki: explicitSpki(explicitP256({ cofactor: null }), p256.uncompressed), signer: p256.privateKey },
  { name: 'key/explicit-p256-compressed', spki: explicitSpki(explicitP256(), compressed(p256.x, p256.y)), signer: p256.privateKey },
  { name: 'key/explicit-p256-infinity', spki: explicitSpki(explicitP256(), infinity) },
  { name: 'key/explicit-p256-off-curve', spki: explicitSpki(explicitP256(), Buffer.concat([Buffer.from([4]), randomBytes(64)])) },
  { name: 'key/explicit-generator-infinity', spki: explicitSpki(explicitP256({ base: infinity }), p256.uncompressed) },
  { name: 'key/explicit-generator-off-curve', spki: explicitSpki(explicitP256({ base: Buffer.concat([Buffer.from([4]), randomBytes(64)]) }), p256.uncompressed) },
  { name: 'key/explicit-order-zero', spki: explicitSpki(explicitP256({ order: der.smallInteger(0) }), p256.uncompressed) },
  { name: 'key/explicit-order-one', spki: explicitSpki(explicitP256({ order: der.smallInteger(1) }), p256.uncompressed) },
  { name: 'key/explicit-order-negative', spki: explicitSpki(explicitP256({ order: rawInteger(Buffer.from([0xff])) }), p256.uncompressed) },
  { name: 'key/explicit-cofactor-huge', spki: explicitSpki(explicitP256({ cofactor: der.unsignedInteger(randomBytes(64)) }), p256.uncompressed) },
  { name: 'key/explicit-prime-even', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid(KEY_OID.primeField), integer(2n ** 256n)) }), p256.uncompressed) },
  { name: 'key/explicit-prime-tiny', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid(KEY_OID.primeField), integer(7n)), a: Buffer.from([1]), b: Buffer.from([1]), base: Buffer.from([4, 0, 1]), order: der.smallInteger(1) }), Buffer.from([4, 0, 1])) },
  { name: 'key/explicit-prime-4096-bits', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid(KEY_OID.primeField), der.unsignedInteger(oddNumber(4096))) }), p256.uncompressed) },
  { name: 'key/explicit-prime-missing', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid(KEY_OID.primeField)) }), p256.uncompressed) },
  { name: 'key/explicit-characteristic-two-garbage', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid(KEY_OID.characteristicTwoField), der.sequence(der.smallInteger(163), oid('1.2.840.10045.1.2.3.3'), der.sequence(der.smallInteger(3), der.smallInteger(6), der.smallInteger(7)))) }), p256.uncompressed) },
  { name: 'key/explicit-unknown-field', spki: explicitSpki(explicitP256({ fieldId: der.sequence(oid('1.2.3.4'), integer(P256.p)) }), p256.uncompressed) },
  { name: 'key/explicit-version-2', spki: explicitSpki(explicitP256({ version: der.smallInteger(2) }), p256.uncompressed), signer: p256.privateKey },
  { name: 'key/explicit-a-b-empty', spki: explicitSpki(explicitP256({ a: Buffer.alloc(0), b: Buffer.alloc(0) }), p256.uncompressed) },
  { name: 'key/implicit-ca', spki: spkiOf(algorithm(KEY_OID.ec, der.nullValue()), p256.uncompressed), signer: p256.privateKey },
  { name: 'key/ec-no-parameters', spki: spkiOf(algorithm(KEY_OID.ec), p256.uncompressed), signer: p256.privateKey },
  { name: 'key/ec-unknown-curve-oid', spki: ecSpki('1.2.3.4.5.6.7', p256.uncompressed) },
  { name: 'key/ec-curve-oid-empty', spki: spkiOf(algorithm(KEY_OID.ec, der.tlv(0x06)), p256.uncompressed) },
  { name: 'key/ec-parameters-integer', spki: spkiOf(algorithm(KEY_OID.ec, der.smallInteger(1)), p256.uncompressed) },
  { name: 'key/ec-parameters-nested-20', spki: spkiOf(algorithm(KEY_OID.ec, nested(20, oid(KEY_OID.p256))), p256.uncompressed) },
];

const secp256k1 = ecKey('secp256k1', 32);
const p521 = ecKey('P-521', 66);
const secp224r1 = ecKey('secp224r1', 28);
const brainpool256 = ecKey('brainpoolP256r1', 32);
const brainpool384 = ecKey('brainpoolP384r1', 48);
const sm2 = generateKeyPairSync('ec', { namedCurve: 'SM2' });
const OTHER_CURVES: KeyCase[] = [
  { name: 'key/secp256k1', spki: secp256k1.spki, signer: secp256k1.privateKey },
  { name: 'key/secp256k1-compressed', spki: ecSpki(KEY_OID.secp256k1, compressed(secp256k1.x, secp256k1.y)), signer: secp256k1.privateKey },
  { name: 'key/secp256k1-infinity', spki: ecSpki(KEY_OID.secp256k1, infinity) },
  { name: 'key/secp256k1-off-curve', spki: ecSpki(KEY_OID.secp256k1, Buffer.concat([Buffer.from([4]), randomBytes(64)])) },
  { name: 'key/p521', spki: p521.spki, signer: p521.privateKey },
  { name: 'key/p521-infinity', spki: ecSpki(KEY_OID.p521, infinity) },
  { name: 'key/secp224r1', spki: secp224r1.spki, signer: secp224r1.privateKey },
  { name: 'key/secp224r1-infinity', spki: ecSpki(KEY_OID.secp224r1, infinity) },
  { name: 'key/brainpoolP256r1', spki: brainpool256.spki, signer: brainpool256.privateKey },
  { name: 'key/brainpoolP256r1-infinity', spki: ecSpki(KEY_OID.brainpoolP256r1, infinity) },
  { name: 'key/brainpoolP384r1', spki: brainpool384.spki, signer: brainpool384.privateKey },
  { name: 'key/sm2', spki: exportSpki(sm2.publicKey) },
  { name: 'key/sm2-infinity', spki: ecSpki(KEY_OID.sm2, infinity) },
];

const EDWARDS_AND_MONTGOMERY: KeyCase[] = [
  { name: 'key/ed25519', spki: exportSpki(generateKeyPairSync('ed25519').publicKey) },
  { name: 'key/ed448', spki: exportSpki(generateKeyPairSync('ed448').publicKey) },
  { name: 'key/x25519', spki: exportSpki(generateKeyPairSync('x25519').publicKey) },
  { name: 'key/x448', spki: exportSpki(generateKeyPairSync('x448').publicKey) },
  { name: 'key/ed25519-31-bytes', spki: spkiOf(algorithm(KEY_OID.ed25519), randomBytes(31)) },
  { name: 'key/ed25519-33-bytes', spki: spkiOf(algorithm(KEY_OID.ed25519), randomBytes(33)) },
  { name: 'key/ed25519-empty', spki: spkiOf(algorithm(KEY_OID.ed25519), Buffer.alloc(0)) },
  { name: 'key/ed25519-null-parameters', spki: spkiOf(algorithm(KEY_OID.ed25519, der.nullValue()), randomBytes(32)) },
  { name: 'key/ed25519-all-ff', spki: spkiOf(algorithm(KEY_OID.ed25519), Buffer.alloc(32, 0xff)) },
  { name: 'key/x25519-all-zero', spki: spkiOf(algorithm(KEY_OID.x25519), Buffer.alloc(32)) },
  { name: 'key/ed448-56-bytes', spki: spkiOf(algorithm(KEY_OID.ed448), randomBytes(56)) },
];

const dsa = generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 });
const modp14 = createDiffieHellmanGroup('modp14');
modp14.generateKeys();
const DSA_AND_DH: KeyCase[] = [
  { name: 'key/dsa-1024', spki: exportSpki(dsa.publicKey), signer: dsa.privateKey },
  { name: 'key/dsa-parameters-zero', spki: dsaSpki([der.sequence(der.smallInteger(0), der.smallInteger(0), der.smallInteger(0))], Buffer.from([1])) },
  { name: 'key/dsa-no-parameters', spki: dsaSpki([], randomBytes(128)) },
  { name: 'key/dsa-p-8192-bits', spki: dsaSpki([der.sequence(der.unsignedInteger(oddNumber(8192)), der.unsignedInteger(oddNumber(256)), der.smallInteger(2))], oddNumber(8190)) },
  { name: 'key/dsa-q-larger-than-p', spki: dsaSpki([der.sequence(der.unsignedInteger(oddNumber(160)), der.unsignedInteger(oddNumber(1024)), der.smallInteger(2))], oddNumber(100)) },
  { name: 'key/dh-pkcs3-modp14', spki: spkiOf(algorithm(KEY_OID.dhPkcs3, der.sequence(der.unsignedInteger(modp14.getPrime()), der.unsignedInteger(modp14.getGenerator()))), der.unsignedInteger(modp14.getPublicKey())) },
  { name: 'key/dh-pkcs3-no-parameters', spki: spkiOf(algorithm(KEY_OID.dhPkcs3), der.unsignedInteger(randomBytes(256))) },
  { name: 'key/dh-pkcs3-p-16384-bits', spki: spkiOf(algorithm(KEY_OID.dhPkcs3, der.sequence(der.unsignedInteger(oddNumber(16384)), der.smallInteger(2))), der.unsignedInteger(randomBytes(64))) },
  { name: 'key/dh-x942-parameters-zero', spki: spkiOf(algorithm(KEY_OID.dhX942, der.sequence(der.smallInteger(0), der.smallInteger(0), der.smallInteger(0))), der.smallInteger(1)) },
];

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaModulus = Buffer.from(rsa.publicKey.export({ format: 'jwk' }).n!, 'base64url');
const rsaBits = rsaPublicKey(rsaModulus, E65537);
const evenModulus = Buffer.from(rsaModulus);
evenModulus[evenModulus.length - 1]! &= 0xfe;
const rsaPss = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha256' });
const signedByRsa = (name: string, spki: Buffer): KeyCase => ({ name, spki, signer: rsa.privateKey });
const RSA: KeyCase[] = [
  ...[1, 8, 1023, 2047, 2049, 4097, 8192, 16384, 16385].map((bits) => signedByRsa(`key/rsa-modulus-${bits}-bits`, rsaSpki(rsaPublicKey(oddNumber(bits), E65537)))),
  ...[1, 3, 65535].map((e) => signedByRsa(`key/rsa-exponent-${e}`, rsaSpki(rsaPublicKey(rsaModulus, bytesOf(BigInt(e)))))),
  signedByRsa('key/rsa-exponent-0', rsaSpki(rsaPublicKey(rsaModulus, Buffer.from([0])))),
  signedByRsa('key/rsa-exponent-2', rsaSpki(rsaPublicKey(rsaModulus, Buffer.from([2])))),
  signedByRsa('key/rsa-exponent-2048-bits', rsaSpki(rsaPublicKey(rsaModulus, oddNumber(2048)))),
  signedByRsa('key/rsa-exponent-equals-modulus', rsaSpki(rsaPublicKey(rsaModulus, rsaModulus))),
  signedByRsa('key/rsa-65537-even-modulus', rsaSpki(rsaPublicKey(evenModulus, E65537))),
  signedByRsa('key/rsa-modulus-zero', rsaSpki(der.sequence(rawInteger(Buffer.from([0])), der.unsignedInteger(E65537)))),
  signedByRsa('key/rsa-modulus-empty-integer', rsaSpki(der.sequence(rawInteger(Buffer.alloc(0)), der.unsignedInteger(E65537)))),
  signedByRsa('key/rsa-modulus-negative', rsaSpki(der.sequence(rawInteger(rsaModulus), der.unsignedInteger(E65537)))),
  signedByRsa('key/rsa-exponent-negative', rsaSpki(der.sequence(der.unsignedInteger(rsaModulus), rawInteger(Buffer.from([0xfe, 0xff, 0xff]))))),
  signedByRsa('key/rsa-modulus-leading-zeros', rsaSpki(der.sequence(rawInteger(Buffer.concat([Buffer.alloc(2), rsaModulus])), der.unsignedInteger(E65537)))),
  signedByRsa('key/rsa-exponent-leading-zero', rsaSpki(der.sequence(der.unsignedInteger(rsaModulus), rawInteger(Buffer.from([0, 1, 0, 1]))))),
  signedByRsa('key/rsa-pss-no-parameters', rsaSpki(rsaBits, [], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-pss-with-parameters', rsaSpki(rsaBits, [pssParameters()], KEY_OID.rsaPss)),
  { name: 'key/rsa-pss-generated', spki: exportSpki(rsaPss.publicKey), signer: rsa.privateKey },
  signedByRsa('key/rsa-pss-null-parameters', rsaSpki(rsaBits, [der.nullValue()], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-pss-salt-length-huge', rsaSpki(rsaBits, [pssParameters(der.unsignedInteger(randomBytes(64)))], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-pss-salt-length-negative', rsaSpki(rsaBits, [pssParameters(rawInteger(Buffer.from([0xff])))], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-pss-trailer-field-2', rsaSpki(rsaBits, [pssParameters(undefined, [der.explicit(3, der.smallInteger(2))])], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-pss-parameters-garbage', rsaSpki(rsaBits, [der.sequence(der.explicit(0, der.octetString(randomBytes(16))))], KEY_OID.rsaPss)),
  signedByRsa('key/rsa-missing-null', rsaSpki(rsaBits, [])),
  signedByRsa('key/rsa-parameters-integer', rsaSpki(rsaBits, [der.smallInteger(0)])),
  signedByRsa('key/rsa-parameters-oid', rsaSpki(rsaBits, [oid(KEY_OID.sha256)])),
  signedByRsa('key/rsa-null-and-more', rsaSpki(rsaBits, [der.nullValue(), der.nullValue()])),
  signedByRsa('key/rsa-key-trailing-garbage', rsaSpki(Buffer.concat([rsaBits, Buffer.from([0, 0])]))),
  signedByRsa('key/rsa-key-one-integer', rsaSpki(der.sequence(der.unsignedInteger(rsaModulus)))),
  signedByRsa('key/rsa-key-three-integers', rsaSpki(der.sequence(der.unsignedInteger(rsaModulus), der.unsignedInteger(E65537), der.smallInteger(1)))),
  signedByRsa('key/rsa-key-bare-integer', rsaSpki(der.unsignedInteger(rsaModulus))),
  signedByRsa('key/rsa-key-empty', rsaSpki(Buffer.alloc(0))),
];

const STRUCTURE: KeyCase[] = [
  { name: 'spki/bit-string-unused-bits-1', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), bitStringWithUnused(1, p256.uncompressed)), signer: p256.privateKey },
  { name: 'spki/bit-string-unused-bits-7', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), bitStringWithUnused(7, p256.uncompressed)), signer: p256.privateKey },
  { name: 'spki/bit-string-unused-bits-8', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), bitStringWithUnused(8, p256.uncompressed)), signer: p256.privateKey },
  { name: 'spki/rsa-bit-string-unused-bits-3', spki: der.sequence(algorithm(KEY_OID.rsa, der.nullValue()), bitStringWithUnused(3, rsaBits)), signer: rsa.privateKey },
  { name: 'spki/bit-string-without-unused-byte', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), der.tlv(0x03)) },
  { name: 'spki/extra-element-null', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), der.bitString(p256.uncompressed), der.nullValue()), signer: p256.privateKey },
  { name: 'spki/extra-element-key', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), der.bitString(p256.uncompressed), der.bitString(infinity)), signer: p256.privateKey },
  { name: 'spki/algorithm-extra-element', spki: spkiOf(algorithm(KEY_OID.ec, oid(KEY_OID.p256), der.nullValue()), p256.uncompressed), signer: p256.privateKey },
  { name: 'spki/algorithm-only', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256))) },
  { name: 'spki/key-before-algorithm', spki: der.sequence(der.bitString(p256.uncompressed), algorithm(KEY_OID.ec, oid(KEY_OID.p256))) },
  { name: 'spki/key-as-octet-string', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), der.octetString(p256.uncompressed)) },
  { name: 'spki/key-as-constructed-bit-string', spki: der.sequence(algorithm(KEY_OID.ec, oid(KEY_OID.p256)), der.tlv(0x23, der.bitString(p256.uncompressed))) },
  { name: 'spki/algorithm-empty', spki: der.sequence(der.sequence(), der.bitString(p256.uncompressed)) },
  { name: 'spki/algorithm-bare-oid', spki: der.sequence(oid(KEY_OID.ec), der.bitString(p256.uncompressed)) },
  { name: 'spki/algorithm-oid-empty', spki: spkiOf(der.sequence(der.tlv(0x06), oid(KEY_OID.p256)), p256.uncompressed) },
  { name: 'spki/algorithm-oid-huge-arc', spki: spkiOf(algorithm(`1.2.840.${'9'.repeat(60)}`, oid(KEY_OID.p256)), p256.uncompressed) },
  { name: 'spki/algorithm-unknown-oid', spki: spkiOf(algorithm('1.2.3.4'), randomBytes(65)) },
  { name: 'spki/empty-sequence', spki: der.sequence() },
  { name: 'spki/rsa-key-nested-20', spki: rsaSpki(nested(20, rsaBits)) },
  { name: 'spki/rsa-key-nested-2000', spki: rsaSpki(nested(2000)) },
  { name: 'spki/parameters-nested-1000', spki: spkiOf(algorithm(KEY_OID.ec, nested(1000, oid(KEY_OID.p256))), p256.uncompressed) },
  { name: 'spki/spki-inside-key', spki: rsaSpki(rsa.publicKey.export({ type: 'spki', format: 'der' })) },
  { name: 'spki/spki-inside-key-10-deep', spki: Array.from({ length: 10 }).reduce<Buffer>((inner) => ecSpki(KEY_OID.p256, inner), p256.spki) },
];

const GROUPS: Readonly<Record<string, readonly KeyCase[]>> = {
  'EC points on P-256 and P-384': EC_POINTS,
  'EC curve parameters': EC_PARAMETERS,
  'other curves': OTHER_CURVES,
  'Edwards and Montgomery keys': EDWARDS_AND_MONTGOMERY,
  'DSA and DH keys': DSA_AND_DH,
  'RSA keys': RSA,
  'SubjectPublicKeyInfo structure': STRUCTURE,
};

const ENDPOINTS = ['enroll', 'renew'] as const;
const CSR_INPUTS = Object.values(GROUPS).reduce((sum, cases) => sum + cases.length, 0) * ENDPOINTS.length;

// ---------------------------------------------------------------------------------------
// Client certificates: keys openssl signs with that we would not issue for, or odd ones
// ---------------------------------------------------------------------------------------

/** openssl arguments that write a private key to the path given last. */
const CLIENT_KEYS: Readonly<Record<string, (out: string) => string[][]>> = {
  'p256-explicit-parameters': (out) => [['ecparam', '-name', 'prime256v1', '-param_enc', 'explicit', '-genkey', '-noout', '-out', out]],
  'p256-compressed': (out) => [
    ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${out}.plain`],
    ['ec', '-in', `${out}.plain`, '-conv_form', 'compressed', '-out', out],
  ],
  secp256k1: (out) => [['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', out]],
  p521: (out) => [['ecparam', '-name', 'secp521r1', '-genkey', '-noout', '-out', out]],
  brainpoolP256r1: (out) => [['ecparam', '-name', 'brainpoolP256r1', '-genkey', '-noout', '-out', out]],
  ed25519: (out) => [['genpkey', '-algorithm', 'ed25519', '-out', out]],
  'rsa1024-exponent-3': (out) => [['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', out]],
  // Five primes: an 8192-bit key in ~2 s instead of ~15 s, and one more oddity.
  rsa8192: (out) => [['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:8192', '-pkeyopt', 'rsa_keygen_primes:5', '-out', out]],
};

/**
 * Who the certificate claims to be and who signed it: our issuing CA (what only a holder of
 * its key could make; the serial of the real device's certificate, or a new device), or
 * the key itself (what anyone can make).
 */
const CERT_KINDS = ['issued-as-device-serial', 'issued-as-new-device', 'self-signed-as-device'] as const;
const ROUTES = ['GET /v1/device', 'POST /v1/renew'] as const;
const TLS_VERSIONS = ['tls1.3', 'tls1.2'] as const;

const keyPath = (name: string) => join(work, `client-${name}.key`);
const certPath = (name: string, kind: string) => join(work, `client-${name}-${kind}.pem`);

/**
 * Security level 0 for curl: at the distribution's default (2) it will not even load an
 * RSA-1024 certificate, and the point is that the server judges what it is sent.
 */
const clientOpensslConf = join(work, 'client-openssl.cnf');
writeFileSync(
  clientOpensslConf,
  'openssl_conf = imprint_test\n[imprint_test]\nssl_conf = ssl_section\n[ssl_section]\nsystem_default = tls_defaults\n[tls_defaults]\nCipherString = DEFAULT@SECLEVEL=0\n',
);

// The 8192-bit key takes a moment: make every key now, while the CSR corpus runs.
const clientKeys = Promise.all(
  Object.entries(CLIENT_KEYS).map(async ([name, commands]) => {
    for (const args of commands(keyPath(name))) await execFileAsync('openssl', args);
  }),
);
clientKeys.catch(() => undefined); // awaited (and reported) where used

async function makeClientCertificates(deviceSerial: string): Promise<void> {
  await clientKeys;
  const extensions = join(work, 'client.ext');
  writeFileSync(extensions, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const issuer = ['-CA', join(dataDir, 'ca/issuer.pem'), '-CAkey', join(dataDir, 'ca/issuer.key')];
  await Promise.all(
    Object.keys(CLIENT_KEYS).map(async (name) => {
      const key = keyPath(name);
      const request = join(work, `client-${name}.csr`);
      await execFileAsync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${DEVICE_ID}`, '-out', request]);
      await execFileAsync('openssl', ['x509', '-req', '-in', request, ...issuer, '-set_serial', `0x${deviceSerial}`, '-days', '2', '-extfile', extensions, '-out', certPath(name, 'issued-as-device-serial')]);
      await execFileAsync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=key-encodings-${name}`, '-out', request]);
      await execFileAsync('openssl', ['x509', '-req', '-in', request, ...issuer, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '2', '-extfile', extensions, '-out', certPath(name, 'issued-as-new-device')]);
      await execFileAsync('openssl', ['req', '-new', '-x509', '-key', key, '-subj', `/CN=${DEVICE_ID}`, '-days', '2', '-addext', 'extendedKeyUsage=clientAuth', '-out', certPath(name, 'self-signed-as-device')]);
    }),
  );
}

// ---------------------------------------------------------------------------------------
// The server process tree and the verdict on each input
// ---------------------------------------------------------------------------------------

let server: ServerProcess;
const started: ServerProcess[] = [];
/** The processes recorded before the corpus: these, and only these, must run at the end. */
let original: ServerPids;
let tokens: string[] = [];
let device: { certificatePem: string; keyPem: string; serial: string };
const renewBody = join(work, 'renew.json');
const tally = { tried: 0, handled: 0, csr: 0, clientCerts: 0, refusedHandshakes: 0, restarts: 0, failures: [] as string[] };
/** Why handshakes were refused, and how often: the keys that never reached our code. */
const handshakeRefusals = new Map<string, number>();
/** How client certificates that got an HTTP answer were refused: "required" means curl sent none. */
const clientCertCodes = new Map<string, number>();

async function start(): Promise<void> {
  server = await spawnTestServer(dataDir, SERVE_ARGS);
  started.push(server);
  await waitForWorkers(server.child.pid!, WORKERS);
}

const running = (target: ServerProcess) => target.child.exitCode === null && target.child.signalCode === null;

/** What the primary said about its workers' deaths (and its own). */
const exitReport = (target: ServerProcess): string =>
  target
    .stderr()
    .split('\n')
    .filter((line) => /exited|died|stopping/.test(line))
    .join('; ');

/**
 * The server to send the next input to. One whose primary has exited (it stops when a
 * fresh worker dies at once) is started again on the same data, so that every further
 * input still gets its own verdict instead of a connection refused.
 */
async function current(): Promise<ServerProcess> {
  if (!running(server) || !isRunning(server.child.pid!)) {
    await Promise.race([server.exited, sleep(5000)]);
    tally.restarts++;
    await start();
  }
  return server;
}

/** One input's answer: an HTTP response, or why none came. */
interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: any;
  /** Set when no HTTP response came: the transport error, or curl's exit and message. */
  readonly failure?: string;
  readonly curlExit?: number;
  /** The server ended the connection with a TLS alert. */
  readonly alert?: boolean;
}

/**
 * Sends one input and judges it: a process that died fails it first (the answer of a
 * process that is gone says nothing), then `judge` on the answer.
 */
async function attempt(label: string, send: (target: ServerProcess) => Promise<Answer>, judge: (answer: Answer) => string | undefined): Promise<Answer> {
  tally.tried++;
  const target = await current();
  const primary = target.child.pid!;
  const before = serverPids(primary);
  const answer = await send(target);
  // A process that answered (a status, a TLS alert) was alive; a dropped connection may
  // be a worker on its way out.
  const after = answer.failure === undefined || answer.alert ? serverPids(primary) : await settledPids(primary, before, 500);
  const died = processChanges(before, after);
  if (died) {
    // Let the primary replace the worker, or exit, before the next input is judged.
    const exited = target.exited.then(() => undefined);
    await (after.primary === undefined ? Promise.race([exited, sleep(5000)]) : waitForWorkers(primary, WORKERS, 6000).catch(() => undefined));
  }
  const problem = died ? `${died} [${exitReport(target)}] (answer: ${answer.failure ?? answer.status})` : judge(answer);
  if (problem) tally.failures.push(`${label}: ${problem}`);
  expect(problem, label).toBeUndefined();
  tally.handled++;
  return answer;
}

/** A 4xx JSON error whose code is known and in `codes`; undefined when it is. */
function refusal(answer: Answer, codes: ReadonlySet<string>): string | undefined {
  if (answer.failure !== undefined) return `no HTTP answer: ${answer.failure}`;
  const summary = `${answer.status} ${(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)).slice(0, 160)}`;
  if (answer.status < 400 || answer.status >= 500) return `expected a 4xx, got ${summary}`;
  if (!answer.contentType.startsWith('application/json')) return `not JSON: ${answer.contentType} ${summary}`;
  const code = answer.body?.error;
  if (!KNOWN_CODES.has(code) || typeof answer.body.message !== 'string') return `not a known error: ${summary}`;
  if (!codes.has(code)) return `expected one of ${[...codes].join(', ')}, got ${summary}`;
  if (/\n\s+at .*:\d+:\d+/.test(answer.body.message)) return `a stack trace reached the client: ${summary}`;
  return undefined;
}

async function httpAnswer(send: () => ReturnType<typeof call>): Promise<Answer> {
  try {
    const response = await send();
    return { status: response.status, contentType: String(response.headers['content-type'] ?? ''), body: response.body };
  } catch (error) {
    return { status: 0, contentType: '', body: undefined, failure: (error as Error).message };
  }
}

function sendCsr(endpoint: (typeof ENDPOINTS)[number], csr: Buffer) {
  return (target: ServerProcess): Promise<Answer> => {
    const json = { csr: pemOf(csr) };
    if (endpoint === 'enroll') {
      const token = tokens.shift();
      if (!token) throw new Error('ran out of bootstrap tokens');
      return httpAnswer(() => call(`${target.url}/v1/enroll`, { ca: target.rootPem, json, headers: { authorization: `Bearer ${token}` } }));
    }
    return httpAnswer(() => call(`${target.url}/v1/renew`, { ca: target.rootPem, cert: device.certificatePem, key: device.keyPem, json }));
  };
}

/** curl with a client certificate; never throws: a failed handshake is an answer too. */
async function curlWith(target: ServerProcess, certificate: string, key: string, route: (typeof ROUTES)[number], tls: (typeof TLS_VERSIONS)[number]): Promise<Answer> {
  const [method, path] = route.split(' ') as [string, string];
  const args = ['-sS', '--max-time', '10', '-w', '\n%{http_code}\n%{content_type}', '--cacert', join(dataDir, 'ca/root.pem'), '--cert', certificate, '--key', key];
  args.push(...(tls === 'tls1.3' ? ['--tlsv1.3'] : ['--tlsv1.2', '--tls-max', '1.2']));
  if (method === 'POST') args.push('-H', 'content-type: application/json', '--data-binary', `@${renewBody}`);
  args.push(`${target.url}${path}`);
  try {
    const { stdout } = await execFileAsync('curl', args, { encoding: 'utf8', env: { ...process.env, OPENSSL_CONF: clientOpensslConf } });
    const lines = stdout.split('\n');
    const contentType = lines.pop()!;
    const status = Number(lines.pop());
    const text = lines.join('\n');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status, contentType, body };
  } catch (error) {
    const failed = error as { code?: number; stderr?: string };
    const message = String(failed.stderr ?? '').trim();
    return { status: 0, contentType: '', body: undefined, failure: `curl exit ${failed.code}: ${message}`, curlExit: failed.code ?? -1, alert: /alert/i.test(message) };
  }
}

/**
 * The handshake itself refused: curl 35 (handshake failed) or 56 (TLS 1.3: the server's
 * alert arrives after the client has sent its request), with an SSL error, not a reset.
 */
const refusedHandshake = (answer: Answer): boolean =>
  (answer.curlExit === 35 || answer.curlExit === 56) && /SSL|TLS|alert/i.test(answer.failure ?? '') && !/reset by peer|Connection refused/i.test(answer.failure ?? '');

/** Fails when any process recorded before the corpus has died or a new one has appeared. */
async function expectOriginalProcesses(after: string): Promise<void> {
  await sleep(200); // a worker may still be on its way out
  const now = serverPids(original.primary!);
  const changes = processChanges(original, now) ?? (tally.restarts ? `the server was restarted ${tally.restarts} times` : undefined);
  expect(changes, `${after}: ${started.map(exitReport).join('; ')}`).toBeUndefined();
}

beforeAll(async () => {
  await start();
  original = serverPids(server.child.pid!);
  expect(original.workers).toHaveLength(WORKERS);

  const minted = await imprint(['tokens', 'create', '--data', dataDir, '--count', String(CSR_INPUTS / ENDPOINTS.length + 1)]);
  expect(minted.code, minted.stderr).toBe(0);
  tokens = minted.stdout.trim().split('\n');

  const { csrPem, keyPem } = opensslCsr('p256', `/CN=${DEVICE_ID}`, work);
  const enrolled = await call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: csrPem }, headers: { authorization: `Bearer ${tokens.shift()}` } });
  expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
  device = { certificatePem: enrolled.body.certificate, keyPem, serial: enrolled.body.serial };
  writeFileSync(renewBody, JSON.stringify({ csr: opensslCsr('p256', `/CN=${DEVICE_ID}`, work).csrPem }));
});

afterAll(async () => {
  console.log(
    `key encodings: ${tally.tried} tried, ${tally.handled} handled ` +
      `(${tally.csr} CSR keys over enroll and renew, ${tally.clientCerts} client certificates of which ${tally.refusedHandshakes} refused in the handshake)` +
      [...clientCertCodes].map(([code, count]) => `\n  client certificates answered ${code} x${count}`).join('') +
      [...handshakeRefusals].map(([reason, count]) => `\n  refused handshake x${count}: ${reason}`).join('') +
      (tally.failures.length ? `\n  ${tally.failures.join('\n  ')}` : ''),
  );
  // Every server this file started, restarted ones included; a group already gone rejects.
  for (const target of started) await target.killGroup('SIGKILL').catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

let enrollments = 0;
for (const [group, cases] of Object.entries(GROUPS)) {
  describe(`CSR keys: ${group}`, () => {
    const inputs = cases.flatMap((keyCase) => ENDPOINTS.map((endpoint) => ({ ...keyCase, endpoint, label: `${keyCase.name} (${endpoint})` })));

    it.each(inputs)('$label', async ({ label, spki, signer, endpoint }) => {
      tally.csr++;
      const commonName = endpoint === 'renew' ? DEVICE_ID : `key-encodings-${++enrollments}`;
      const csr = forgeCsr({ ...(signer ? { key: signer } : {}), spki, commonNames: [commonName] });
      await attempt(label, sendCsr(endpoint, csr), (answer) => refusal(answer, CSR_CODES));
    });

    it(`left the processes recorded before the corpus running`, () => expectOriginalProcesses(group));
  });
}

describe('keys in client certificates', () => {
  beforeAll(async () => {
    await makeClientCertificates(device.serial);
    // The certificates really carry these keys (openssl re-encodes keys it reads).
    const text = (name: string) => execFileSync('openssl', ['x509', '-noout', '-text', '-in', certPath(name, 'issued-as-new-device')], { encoding: 'utf8' });
    expect(text('p256-explicit-parameters')).toMatch(/Field Type: prime-field/);
    expect(text('p256-compressed')).toMatch(/pub:\s+0[23]:/);
  }, 60_000);

  const inputs = Object.keys(CLIENT_KEYS).flatMap((key) =>
    CERT_KINDS.flatMap((kind) => ROUTES.flatMap((route) => TLS_VERSIONS.map((tls) => ({ key, kind, route, tls, label: `cert/${key} ${kind} ${route} ${tls}` })))),
  );

  it.each(inputs)('$label', async ({ label, key, kind, route, tls }) => {
    tally.clientCerts++;
    await attempt(
      label,
      (target) => curlWith(target, certPath(key, kind), keyPath(key), route, tls),
      (answer) => {
        if (refusedHandshake(answer)) {
          tally.refusedHandshakes++;
          const reason = `${key} over ${tls}: ${answer.failure!.replace(/^curl exit \d+: curl: \(\d+\) /, '')}`;
          handshakeRefusals.set(reason, (handshakeRefusals.get(reason) ?? 0) + 1);
          return undefined;
        }
        const verdict = refusal(answer, CLIENT_CERT_CODES);
        if (!verdict) clientCertCodes.set(answer.body.error, (clientCertCodes.get(answer.body.error) ?? 0) + 1);
        return verdict;
      },
    );
  });

  it('left the processes recorded before the corpus running', () => expectOriginalProcesses('client certificates'));
});

describe('after the whole corpus', () => {
  it('the same primary and workers run as before it, and the server still answers', async () => {
    await expectOriginalProcesses('the whole corpus');
    expect((await call(`${server.url}/healthz`, { ca: server.rootPem })).status).toBe(200);
    expect(tally.handled).toBe(tally.tried);
  });
});
