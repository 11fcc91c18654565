/**
 * The device side of enrollment: a key made on the device and a PKCS#10 CSR (RFC 2986)
 * signed with it, built as DER and signed with Node's crypto as small firmware would.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from '../src/asn1/der.js';

const generateKeyPairAsync = promisify(generateKeyPair);

const COMMON_NAME = '2.5.4.3';
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
/** PKCS#9 challengePassword (RFC 2985 5.4.1): SCEP carries the bootstrap token in it. */
const CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';

/** Which kind of key a device makes: P-256 (most secure elements), or RSA 2048 (what SCEP needs, see scep.ts). */
export type KeyKind = 'ec' | 'rsa';

/** A device key pair. */
export interface DeviceKey {
  readonly privateKey: KeyObject;
  readonly privateKeyPem: string;
}

/** Makes a fresh key: P-256 unless asked for RSA 2048. */
export async function generateDeviceKey(kind: KeyKind = 'ec'): Promise<DeviceKey> {
  const { privateKey } =
    kind === 'rsa' ? await generateKeyPairAsync('rsa', { modulusLength: 2048 }) : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** Loads a key saved by a previous run. */
export function loadDeviceKey(pem: string): DeviceKey {
  return { privateKey: createPrivateKey(pem), privateKeyPem: pem };
}

/** The key's SubjectPublicKeyInfo, DER. */
export const spkiOf = (key: DeviceKey): Buffer => createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });

/** A Name of one RDN, CN=<commonName>. */
export const commonNameOf = (commonName: string): Buffer => der.sequence(der.set(der.sequence(der.objectIdentifier(COMMON_NAME), der.utf8String(commonName))));

const isRsa = (key: DeviceKey): boolean => key.privateKey.asymmetricKeyType === 'rsa';

/** The AlgorithmIdentifier of the device key's signatures: sha256WithRSAEncryption or ecdsa-with-SHA256. */
export const signatureAlgorithmOf = (key: DeviceKey): Buffer =>
  isRsa(key) ? der.sequence(der.objectIdentifier(SHA256_WITH_RSA), der.nullValue()) : der.sequence(der.objectIdentifier(ECDSA_WITH_SHA256));

/** Signs `data` with the device key (SHA-256); the signatureAlgorithm to name beside it. */
export function signWith(key: DeviceKey, data: Buffer): { signature: Buffer; algorithm: Buffer } {
  const signature = isRsa(key) ? sign('sha256', data, key.privateKey) : sign('sha256', data, { key: key.privateKey, dsaEncoding: 'der' });
  return { signature, algorithm: signatureAlgorithmOf(key) };
}

/** A CSR for CN=<deviceId> signed by the device key, as DER; with a challengePassword when given (SCEP). */
export function buildCsrDer(key: DeviceKey, deviceId: string, options: { challengePassword?: string | undefined } = {}): Buffer {
  const attributes = options.challengePassword === undefined
    ? [] // the server decides the profile anyway
    : [der.sequence(der.objectIdentifier(CHALLENGE_PASSWORD), der.set(der.utf8String(options.challengePassword)))];
  const info = der.sequence(der.smallInteger(0), commonNameOf(deviceId), spkiOf(key), der.implicitConstructed(0, ...attributes));
  const { signature, algorithm } = signWith(key, info);
  return der.sequence(info, algorithm, der.bitString(signature));
}

/** PEM armour. */
export function pemOf(bytes: Buffer, label: string): string {
  const lines = bytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** A CSR for CN=<deviceId> signed by the device key, as PEM. */
export function buildCsr(key: DeviceKey, deviceId: string): string {
  return pemOf(buildCsrDer(key, deviceId), 'CERTIFICATE REQUEST');
}
