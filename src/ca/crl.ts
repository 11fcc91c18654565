/**
 * X.509 v2 CRLs (RFC 5280 5), assembled as DER and signed with Node's crypto: a CRL of
 * 100,000 entries is a loop of small buffer writes, not 100,000 pkijs objects. The parts
 * are separate so that a CRL can be put together again from its entries, its fields and
 * the signature it was given, byte for byte, by a process that did not sign it.
 */
import { createSign, createVerify, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { encodeExtension, keyIdentifier, signingKeyFor, type SigningKey } from './certificate-builder.js';
import type { CertificateParts } from './certificate-info.js';
import { OID } from './oids.js';
import { CRL_REASON_CODES } from './revocation-reasons.js';

/** One revoked certificate. */
export interface CrlEntry {
  /** Lowercase hex. */
  readonly serial: string;
  /** Milliseconds since the epoch: a first CRL of a million entries makes no Date for each. */
  readonly revokedAt: number;
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
const serialBytes = new Uint8Array(MAX_SERIAL_BYTES);
/** Each ASCII character's hex digit value, -1 for none. */
const HEX_DIGITS = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_DIGITS[i.toString(16).charCodeAt(0)] = HEX_DIGITS[i.toString(16).toUpperCase().charCodeAt(0)] = i;
const DAY_MS = 86_400_000;

/** Decodes `hex` into serialBytes; returns its octet count, or 0 when it is not 1 to 20 octets of hex. */
function decodeSerial(hex: string): number {
  const length = hex.length >> 1;
  if (length === 0 || length > MAX_SERIAL_BYTES || hex.length & 1) return 0;
  for (let i = 0; i < length; i++) {
    const high = HEX_DIGITS[hex.charCodeAt(2 * i)] ?? -1;
    const low = HEX_DIGITS[hex.charCodeAt(2 * i + 1)] ?? -1;
    if (high < 0 || low < 0) return 0;
    serialBytes[i] = (high << 4) | low;
  }
  return length;
}

/** Writes `value` as two decimal digits. */
function twoDigits(out: Buffer, at: number, value: number): void {
  out[at] = 0x30 + Math.floor(value / 10);
  out[at + 1] = 0x30 + (value % 10);
}

/**
 * Writes the UTC calendar fields of `ms` (YYMMDDhhmmss, or YYYYMMDDhhmmss when `fullYear`)
 * at `at`, from the day count (Hinnant's civil_from_days) rather than a Date per entry.
 */
function writeTimeDigits(out: Buffer, at: number, ms: number, fullYear: boolean): void {
  const days = Math.floor(ms / DAY_MS);
  const seconds = Math.floor((ms - days * DAY_MS) / 1000);
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  let p = at;
  if (fullYear) {
    twoDigits(out, p, Math.floor(year / 100));
    p += 2;
  }
  twoDigits(out, p, year % 100);
  twoDigits(out, p + 2, month);
  twoDigits(out, p + 4, day);
  twoDigits(out, p + 6, Math.floor(seconds / 3600));
  twoDigits(out, p + 8, Math.floor(seconds / 60) % 60);
  twoDigits(out, p + 10, seconds % 60);
}

/**
 * The last revocation time written, and its digits: the entries of one mass revocation share
 * their time, and its calendar fields were a third of writing an entry (a million entries
 * of one time: 575 -> 380 ms of CPU written cold, 210 -> 140 warm, on Node 24).
 */
let lastRevokedAt = Number.NaN;
const lastTimeDigits = Buffer.alloc(14);

/** The first instant of 2050, from which times are GeneralizedTime. */
const YEAR_2050_MS = Date.UTC(2050, 0, 1);

/**
 * Writes one revokedCertificates entry (userCertificate, revocationDate, crlEntryExtensions)
 * at `at` of `out`, which has room for MAX_CRL_ENTRY_BYTES; returns where it ends. Byte by
 * byte in JavaScript, with the DER helpers' encoding (the tests hold it to them): a CRL of a
 * million entries, first built, writes a million of them, and a native call per field
 * (Buffer write and copy, Date getters) cost as much as the rest.
 */
export function writeCrlEntry(out: Buffer, at: number, entry: CrlEntry): number {
  let extensions = extensionsByReason.get(entry.reason);
  if (!extensions) extensionsByReason.set(entry.reason, (extensions = reasonExtensions(entry.reason)));
  const written = decodeSerial(entry.serial);
  if (written === 0) throw new Error(`serial ${entry.serial} is not 1 to 20 octets of hex`);
  let first = 0;
  while (first < written - 1 && serialBytes[first] === 0) first++;
  const signOctet = serialBytes[first]! & 0x80 ? 1 : 0;
  const integerLength = signOctet + written - first;
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  const fullYear = entry.revokedAt >= YEAR_2050_MS;
  const timeLength = fullYear ? 15 : 13;
  const contentLength = 2 + integerLength + 2 + timeLength + extensions.length;
  let p = at;
  out[p++] = 0x30;
  out[p++] = contentLength; // at most 2 + 21 + 2 + 15 + 16 < 128: the short form
  out[p++] = 0x02;
  out[p++] = integerLength;
  if (signOctet) out[p++] = 0;
  for (let i = first; i < written; i++) out[p++] = serialBytes[i]!;
  out[p++] = fullYear ? 0x18 : 0x17;
  out[p++] = timeLength;
  if (entry.revokedAt !== lastRevokedAt) {
    writeTimeDigits(lastTimeDigits, 0, entry.revokedAt, fullYear);
    lastRevokedAt = entry.revokedAt;
  }
  for (let i = 0; i < timeLength - 1; i++) out[p++] = lastTimeDigits[i]!;
  out[p++] = 0x5a; // Z
  for (let i = 0; i < extensions.length; i++) out[p++] = extensions[i]!;
  return p;
}

/** A tag and definite length alone, for content too large to copy just to wrap it. */
function header(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
}

/**
 * A TBSCertList as the parts it is made of, in order: its header and fields, the
 * revokedCertificates entries as they are kept (tens of MB for a million), its extensions.
 * It is signed, checked and served part by part, so the entries are never copied out of the
 * list that keeps them (src/ca/crl-entries.ts).
 */
export interface CrlTbs {
  readonly parts: readonly Buffer[];
  /** The bytes of all the parts. */
  readonly length: number;
}

/** The TBSCertList around `entries`, the revokedCertificates entries already encoded, in order (none for none). */
export function crlTbs(issuer: CrlIssuer, fields: CrlFields, algorithm: Buffer, entries: readonly Buffer[]): CrlTbs {
  const entriesLength = entries.reduce((sum, part) => sum + part.length, 0);
  const fieldsPart = Buffer.concat([
    der.smallInteger(1), // v2
    algorithm,
    issuer.issuerName,
    der.time(fields.thisUpdate),
    der.time(fields.nextUpdate),
    // RFC 5280 5.1.2.6: with no revoked certificates the list is absent, not empty.
    entriesLength ? header(0x30, entriesLength) : Buffer.alloc(0),
  ]);
  const extensions = der.explicit(
    0,
    der.sequence(
      encodeExtension({
        oid: OID.authorityKeyIdentifier,
        critical: false,
        value: der.sequence(der.implicitPrimitive(0, keyIdentifier(issuer.issuerPublicKeyBits))),
      }),
      encodeExtension({ oid: OID.cRLNumber, critical: false, value: der.smallInteger(fields.crlNumber) }),
    ),
  );
  const contentLength = fieldsPart.length + entriesLength + extensions.length;
  const tbsHeader = header(0x30, contentLength);
  return { parts: [tbsHeader, fieldsPart, ...entries.filter((part) => part.length), extensions], length: tbsHeader.length + contentLength };
}

/** The signature over a TBSCertList. */
export function signCrlTbs(tbs: CrlTbs, signer: SigningKey): Buffer {
  const signing = createSign(signer.digest);
  for (const part of tbs.parts) signing.update(part);
  return signing.sign({ key: signer.privateKey, dsaEncoding: 'der' });
}

/** Whether `signature` is the issuer's over `tbs`: a CRL put together again is served only then. */
export function crlSignatureValid(tbs: CrlTbs, verifier: CrlVerifier, signature: Buffer): boolean {
  const verifying = createVerify(verifier.digest);
  for (const part of tbs.parts) verifying.update(part);
  return verifying.verify({ key: verifier.publicKey, dsaEncoding: 'der' }, signature);
}

/**
 * A CertificateList as the parts it is made of, in order: its header, the TBSCertList's
 * parts, the algorithm and the signature. A process serving a CRL holds it so, never as
 * one buffer: its entries are the entry list's own blocks, so a million of them take 36 MB
 * once, where a CRL written out beside them took as much again (and both at once while the
 * next was written).
 */
export interface SignedCrl {
  readonly parts: readonly Buffer[];
  /** The bytes of all the parts: the CRL's size. */
  readonly length: number;
}

/** The CertificateList of a TBSCertList and its signature. */
export function signedCrl(tbs: CrlTbs, algorithm: Buffer, signature: Buffer): SignedCrl {
  const signatureValue = der.bitString(signature);
  const contentLength = tbs.length + algorithm.length + signatureValue.length;
  const outer = header(0x30, contentLength);
  return { parts: [outer, ...tbs.parts, algorithm, signatureValue], length: outer.length + contentLength };
}

/** A CRL's DER in one buffer, for writing it to a file. */
export const crlDer = (crl: SignedCrl): Buffer => Buffer.concat(crl.parts, crl.length);
