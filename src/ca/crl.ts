/**
 * X.509 v2 CRLs (RFC 5280 5), assembled as DER and signed with Node's crypto: a CRL of
 * 100,000 entries is a loop of small buffer writes, not 100,000 pkijs objects. The parts
 * are separate so that a CRL can be put together again from its entries, its fields and
 * the signature it was given, byte for byte, by a process that did not sign it.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { encodeExtension, keyIdentifier, signingKeyFor, type SigningKey } from './certificate-builder.js';
import type { CertificateParts } from './certificate-info.js';
import { OID } from './oids.js';
import { CRL_REASON_CODES } from './revocation-reasons.js';

/** One revoked certificate. */
export interface CrlEntry {
  /** Lowercase hex. */
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: string;
}

/** Who issues a CRL: the name and key it is issued under. */
export interface CrlIssuer {
  readonly issuerName: Buffer;
  readonly issuerPublicKeyBits: Buffer;
}

/** What puts an issuer's CRL together and checks its signature: its certificate is enough, no key. */
export interface CrlVerifier extends CrlIssuer {
  /** The AlgorithmIdentifier its signer names. */
  readonly algorithm: Buffer;
  readonly digest: SigningKey['digest'];
  readonly publicKey: KeyObject;
}

/** The verifier of CRLs issued under `certificate`. */
export function crlVerifier(certificate: CertificateParts): CrlVerifier {
  const publicKey = certificate.x509.publicKey;
  // The algorithm follows from the key's type and curve alone, as the signer chooses it.
  const { algorithm, digest } = signingKeyFor(publicKey);
  return { issuerName: certificate.subjectName, issuerPublicKeyBits: certificate.publicKeyBits, algorithm, digest, publicKey };
}

/** What tells one CRL of an issuer from the next, besides its entries. */
export interface CrlFields {
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
}

/** The reasonCode entry extension; RFC 5280 5.3.1: unspecified SHOULD be absent. */
function reasonExtensions(reason: string): Buffer {
  const code = CRL_REASON_CODES[reason];
  if (code === undefined || code === 0) return Buffer.alloc(0);
  return der.sequence(encodeExtension({ oid: OID.cRLReason, critical: false, value: der.enumerated(code) }));
}

/** Entries with the same reason share their extension bytes. */
const extensionsByReason = new Map<string, Buffer>();

/** Serial octets at most (RFC 5280 4.1.2.2). */
const MAX_SERIAL_BYTES = 20;
/** The bytes an entry takes at most: a serial with its sign octet, a GeneralizedTime, the longest reason extension. */
export const MAX_CRL_ENTRY_BYTES = 2 + (2 + MAX_SERIAL_BYTES + 1) + (2 + 15) + 16;
const serialBytes = Buffer.allocUnsafe(MAX_SERIAL_BYTES + 1);

/** Writes `value` as two decimal digits. */
function twoDigits(out: Buffer, at: number, value: number): void {
  out[at] = 0x30 + Math.floor(value / 10);
  out[at + 1] = 0x30 + (value % 10);
}

/**
 * Writes one revokedCertificates entry (userCertificate, revocationDate, crlEntryExtensions)
 * at `at` of `out`, which has room for MAX_CRL_ENTRY_BYTES; returns where it ends. Byte by
 * byte, with the DER helpers' encoding (the tests hold it to them): a CRL of a million
 * entries, first built, writes a million of them.
 */
export function writeCrlEntry(out: Buffer, at: number, entry: CrlEntry): number {
  let extensions = extensionsByReason.get(entry.reason);
  if (!extensions) extensionsByReason.set(entry.reason, (extensions = reasonExtensions(entry.reason)));
  const written = serialBytes.write(entry.serial, 'hex');
  if (written === 0 || written * 2 !== entry.serial.length || written > MAX_SERIAL_BYTES) throw new Error(`serial ${entry.serial} is not 1 to 20 octets of hex`);
  let first = 0;
  while (first < written - 1 && serialBytes[first] === 0) first++;
  const signOctet = serialBytes[first]! & 0x80 ? 1 : 0;
  const integerLength = signOctet + written - first;
  const date = entry.revokedAt;
  const year = date.getUTCFullYear();
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  const timeLength = year >= 2050 ? 15 : 13;
  const contentLength = 2 + integerLength + 2 + timeLength + extensions.length;
  let p = at;
  out[p++] = 0x30;
  out[p++] = contentLength; // at most 2 + 21 + 2 + 15 + 16 < 128: the short form
  out[p++] = 0x02;
  out[p++] = integerLength;
  if (signOctet) out[p++] = 0;
  p += serialBytes.copy(out, p, first, written);
  out[p++] = timeLength === 15 ? 0x18 : 0x17;
  out[p++] = timeLength;
  if (timeLength === 15) {
    twoDigits(out, p, Math.floor(year / 100));
    p += 2;
  }
  twoDigits(out, p, year % 100);
  twoDigits(out, p + 2, date.getUTCMonth() + 1);
  twoDigits(out, p + 4, date.getUTCDate());
  twoDigits(out, p + 6, date.getUTCHours());
  twoDigits(out, p + 8, date.getUTCMinutes());
  twoDigits(out, p + 10, date.getUTCSeconds());
  out[p + 12] = 0x5a; // Z
  p += 13;
  return p + extensions.copy(out, p);
}

/** A tag and definite length alone, for content too large to copy just to wrap it. */
function header(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
}

/**
 * The TBSCertList around `entries`, the revokedCertificates entries already encoded and
 * concatenated (empty for none): the entries are copied once, into the result.
 */
export function crlTbs(issuer: CrlIssuer, fields: CrlFields, algorithm: Buffer, entries: Buffer): Buffer {
  return der.sequence(
    der.smallInteger(1), // v2
    algorithm,
    issuer.issuerName,
    der.time(fields.thisUpdate),
    der.time(fields.nextUpdate),
    // RFC 5280 5.1.2.6: with no revoked certificates the list is absent, not empty.
    ...(entries.length ? [header(0x30, entries.length), entries] : []),
    der.explicit(
      0,
      der.sequence(
        encodeExtension({
          oid: OID.authorityKeyIdentifier,
          critical: false,
          value: der.sequence(der.implicitPrimitive(0, keyIdentifier(issuer.issuerPublicKeyBits))),
        }),
        encodeExtension({ oid: OID.cRLNumber, critical: false, value: der.smallInteger(fields.crlNumber) }),
      ),
    ),
  );
}

/** The signature over a TBSCertList. */
export function signCrlTbs(tbs: Buffer, signer: SigningKey): Buffer {
  return sign(signer.digest, tbs, { key: signer.privateKey, dsaEncoding: 'der' });
}

/** Whether `signature` is the issuer's over `tbs`: a CRL put together again is served only then. */
export function crlSignatureValid(tbs: Buffer, verifier: CrlVerifier, signature: Buffer): boolean {
  return verify(verifier.digest, tbs, { key: verifier.publicKey, dsaEncoding: 'der' }, signature);
}

/** The CertificateList: a TBSCertList and its signature. */
export function signedCrl(tbs: Buffer, algorithm: Buffer, signature: Buffer): Buffer {
  return der.sequence(tbs, algorithm, der.bitString(signature));
}
