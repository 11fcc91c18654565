/**
 * Builds and signs X.509 v3 certificates (RFC 5280 4.1) from DER parts with Node's
 * crypto. Every profile (root, issuing CA, server, device) goes through buildCertificate;
 * only the extension list differs.
 */
import { hash, randomFillSync, sign, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { OID } from './oids.js';

/** One relative distinguished name attribute, e.g. CN=sensor-001. */
export interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

/** Encodes a distinguished name as a SEQUENCE of single-attribute SETs, UTF8String values. */
export function encodeName(attributes: readonly NameAttribute[]): Buffer {
  return der.sequence(
    ...attributes.map((a) => der.set(der.sequence(der.objectIdentifier(a.oid), der.utf8String(a.value)))),
  );
}

/** A certificate extension already encoded as its extnValue contents. */
export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Buffer;
}

/** Pre-encodes an extension; profiles keep the constant ones and reuse them for every certificate. */
export function encodeExtension(extension: Extension): Buffer {
  return der.sequence(
    der.objectIdentifier(extension.oid),
    ...(extension.critical ? [der.boolean(true)] : []),
    der.octetString(extension.value),
  );
}

/** What a signer needs to sign a certificate: its key and the algorithm identifier to name. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  /** AlgorithmIdentifier DER written into the certificate twice. */
  readonly algorithm: Buffer;
  /** Digest name for crypto.sign. */
  readonly digest: 'sha256' | 'sha384';
}

/** The parts of one certificate. Extensions are DER-encoded Extension elements. */
export interface CertificateTemplate {
  readonly serial: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectPublicKeyInfo: Buffer;
  readonly extensions: readonly Buffer[];
}

/** The version field of every certificate we write: [0] INTEGER 2, v3. */
const VERSION_3 = der.explicit(0, der.smallInteger(2));

/** Returns the DER certificate for a template signed by the given key. */
export function buildCertificate(template: CertificateTemplate, signer: SigningKey): Buffer {
  const tbs = der.sequence(
    VERSION_3,
    der.unsignedInteger(template.serial),
    signer.algorithm,
    template.issuer,
    der.sequence(der.time(template.notBefore), der.time(template.notAfter)),
    template.subject,
    template.subjectPublicKeyInfo,
    der.explicit(3, der.sequence(...template.extensions)),
  );
  const signature = sign(signer.digest, tbs, { key: signer.privateKey, dsaEncoding: 'der' });
  return der.sequence(tbs, signer.algorithm, der.bitString(signature));
}

/** The signature AlgorithmIdentifier for a CA key; CA keys are EC (P-256, or P-384 when imported). */
export function signingKeyFor(privateKey: KeyObject): SigningKey {
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (privateKey.asymmetricKeyType === 'ec' && (curve === 'prime256v1' || curve === 'P-256')) {
    return { privateKey, algorithm: der.sequence(der.objectIdentifier(OID.ecdsaWithSha256)), digest: 'sha256' };
  }
  if (privateKey.asymmetricKeyType === 'ec' && (curve === 'secp384r1' || curve === 'P-384')) {
    return { privateKey, algorithm: der.sequence(der.objectIdentifier(OID.ecdsaWithSha384)), digest: 'sha384' };
  }
  if (privateKey.asymmetricKeyType === 'rsa') {
    return {
      privateKey,
      algorithm: der.sequence(der.objectIdentifier(OID.sha256WithRsa), der.nullValue()),
      digest: 'sha256',
    };
  }
  throw new Error(`unsupported CA key type ${privateKey.asymmetricKeyType ?? 'unknown'} ${curve ?? ''}`.trim());
}

/**
 * Key identifier per RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING
 * contents. `spki` is the whole SubjectPublicKeyInfo; its key bits are the last element.
 */
export function keyIdentifier(subjectPublicKeyBits: Buffer): Buffer {
  return hash('sha1', subjectPublicKeyBits, 'buffer');
}

/**
 * Random bytes from the system CSPRNG, drawn 4 KiB at a time: a serial then costs a copy
 * (~0.1 us) instead of a call of its own into OpenSSL (~2 us), as Node's randomUUID does.
 * Each byte is handed out once.
 */
export function pooledRandomBytes(poolSize = 4096): (size: number) => Buffer {
  const pool = Buffer.allocUnsafeSlow(poolSize);
  let used = poolSize;
  return (size) => {
    if (size > poolSize) throw new RangeError(`at most ${poolSize} random bytes at a time`);
    if (used + size > poolSize) {
      randomFillSync(pool);
      used = 0;
    }
    const bytes = Buffer.from(pool.subarray(used, used + size));
    used += size;
    return bytes;
  };
}

/** A fresh positive 16-byte serial (RFC 5280 4.1.2.2 allows up to 20 octets). */
export function randomSerial(random: (size: number) => Buffer): Buffer {
  const serial = random(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, and exactly 16 bytes once DER-encoded
  return serial;
}
