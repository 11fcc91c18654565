/**
 * Reads the few fields imprint needs from certificates it trusts (its own CA chain): the
 * raw subject Name, the public key bits, validity and whether it is a CA.
 */
import { X509Certificate } from 'node:crypto';
import { bytesOf, childrenOf, contentOf, readElement } from '../asn1/der-reader.js';
import { describePublicKey } from './public-key.js';

/** Raw parts of a trusted certificate. */
export interface CertificateParts {
  readonly der: Buffer;
  readonly x509: X509Certificate;
  /** The subject Name DER, reused verbatim as the issuer of what this certificate signs. */
  readonly subjectName: Buffer;
  /** subjectPublicKey BIT STRING contents (for key identifiers). */
  readonly publicKeyBits: Buffer;
}

/** Splits a DER certificate into the parts imprint reuses. */
export function certificateParts(der: Buffer): CertificateParts {
  const certificate = readElement(der);
  const [tbs] = childrenOf(der, certificate);
  const fields = childrenOf(der, tbs!);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0; // v1 certificates have no [0] version
  const subject = fields[offset + 4]!;
  const spki = fields[offset + 5]!;
  const keyBits = childrenOf(der, spki)[1]!;
  return {
    der,
    x509: new X509Certificate(der),
    subjectName: bytesOf(der, subject),
    publicKeyBits: contentOf(der, keyBits).subarray(1),
  };
}

/**
 * The key type of a certificate imprint issued, for people ("EC P-256", "RSA 2048"); read
 * by our own DER walk and describePublicKey, never by a native call (see public-key.ts).
 */
export function certificateKeyType(der: Buffer): string {
  try {
    const [tbs] = childrenOf(der, readElement(der));
    const fields = childrenOf(der, tbs!);
    const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
    const [algorithm, bits] = childrenOf(der, fields[offset + 5]!);
    const key = describePublicKey(der, algorithm!, contentOf(der, bits!).subarray(1));
    if (key.type === 'ec' && 'curve' in key) return `EC ${CURVE_NAMES[key.curve] ?? key.curve}`;
    if (key.type === 'rsa' && 'bits' in key) return `RSA ${key.bits}`;
    return key.type;
  } catch {
    return 'unknown';
  }
}

const CURVE_NAMES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384' };
