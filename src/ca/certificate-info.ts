/**
 * Reads the few fields imprint needs from certificates it trusts (its own CA chain): the
 * raw subject Name, the public key bits, validity and whether it is a CA.
 */
import { X509Certificate } from 'node:crypto';
import { bytesOf, childrenOf, contentOf, readElement } from '../asn1/der-reader.js';

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
