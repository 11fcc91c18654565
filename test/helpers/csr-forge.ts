/**
 * Builds CSRs no honest device would send: any subject, key, attribute list, signature
 * algorithm or signature, each part replaceable, for the hostile-input suite.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as der from '../../src/asn1/der.js';

export const OIDS = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  extensionRequest: '1.2.840.113549.1.9.14',
  challengePassword: '1.2.840.113549.1.9.7',
} as const;

/** What a forged CSR is made of; everything has an honest default. */
export interface ForgeOptions {
  /** Signs the request (and gives the SPKI unless `spki` is set); default: a fresh P-256 key. */
  readonly key?: KeyObject;
  readonly version?: Buffer;
  /** The whole subject Name; default: one RDN per common name. */
  readonly subject?: Buffer;
  readonly commonNames?: readonly string[];
  readonly spki?: Buffer;
  readonly attributes?: readonly Buffer[];
  readonly signatureOid?: string;
  /** The signature BIT STRING's content; default: a real signature over the info. */
  readonly signature?: Buffer;
}

let defaultKey: KeyObject | undefined;
/** One P-256 key shared by forged CSRs that do not care which key they carry. */
export const sharedKey = (): KeyObject => (defaultKey ??= generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);

/** A Name with one RDN per common name. */
export const subjectOf = (commonNames: readonly string[]): Buffer =>
  der.sequence(...commonNames.map((cn) => der.set(der.sequence(der.objectIdentifier(OIDS.commonName), der.utf8String(cn)))));

/** An Attribute { type, SET OF values }. */
export const attribute = (oid: string, ...values: Buffer[]): Buffer => der.sequence(der.objectIdentifier(oid), der.set(...values));

/** The CSR's DER. */
export function forgeCsr(options: ForgeOptions = {}): Buffer {
  const key = options.key ?? sharedKey();
  const rsa = key.asymmetricKeyType === 'rsa';
  const info = der.sequence(
    options.version ?? der.smallInteger(0),
    options.subject ?? subjectOf(options.commonNames ?? ['forged-001']),
    options.spki ?? createPublicKey(key).export({ type: 'spki', format: 'der' }),
    der.implicitConstructed(0, ...(options.attributes ?? [])),
  );
  const signature = options.signature ?? sign('sha256', info, rsa ? key : { key, dsaEncoding: 'der' });
  const algorithm = options.signatureOid ?? (rsa ? OIDS.sha256WithRsa : OIDS.ecdsaWithSha256);
  return der.sequence(info, der.sequence(der.objectIdentifier(algorithm), ...(rsa ? [der.nullValue()] : [])), der.bitString(signature));
}

/** PEM armour around DER, with the label of choice. */
export function pemOf(derBytes: Buffer, label = 'CERTIFICATE REQUEST'): string {
  const lines = derBytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
