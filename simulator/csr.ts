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

/** A device key pair (P-256, as most secure elements offer). */
export interface DeviceKey {
  readonly privateKey: KeyObject;
  readonly privateKeyPem: string;
}

/** Makes a fresh P-256 key. */
export async function generateDeviceKey(): Promise<DeviceKey> {
  const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** Loads a key saved by a previous run. */
export function loadDeviceKey(pem: string): DeviceKey {
  return { privateKey: createPrivateKey(pem), privateKeyPem: pem };
}

/** A CSR for CN=<deviceId> signed by the device key, as PEM. */
export function buildCsr(key: DeviceKey, deviceId: string): string {
  const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
  const info = der.sequence(
    der.smallInteger(0),
    der.sequence(der.set(der.sequence(der.objectIdentifier(COMMON_NAME), der.utf8String(deviceId)))),
    spki,
    der.implicitConstructed(0), // no attributes: the server decides the profile anyway
  );
  const signature = sign('sha256', info, { key: key.privateKey, dsaEncoding: 'der' });
  const csr = der.sequence(info, der.sequence(der.objectIdentifier(ECDSA_WITH_SHA256)), der.bitString(signature));
  const lines = csr.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE REQUEST-----\n${lines.join('\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}
