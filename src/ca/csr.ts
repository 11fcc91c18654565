/**
 * Reads PKCS#10 certification requests (RFC 2986) from untrusted input: PEM or base64
 * DER, strictly DER, at most MAX_CSR_DER_BYTES. Parsing is asn1js/pkijs with their
 * default node limits; the signature is checked with Node's crypto on the raw
 * CertificationRequestInfo bytes.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytesOf, childrenOf, contentOf, readElement } from '../asn1/der-reader.js';
import { ImprintError } from '../errors.js';
import { OID } from './oids.js';

/** The DER size cap for a CSR (DESIGN: 16 KiB). */
export const MAX_CSR_DER_BYTES = 16 * 1024;

/** What the key in a CSR is, as far as policy cares. */
export type KeyDescription =
  | { readonly type: 'ec'; readonly curve: string }
  | { readonly type: 'rsa'; readonly bits: number; readonly exponent: bigint }
  | { readonly type: string };

/** A parsed, not yet verified, CSR. */
export interface ParsedCsr {
  readonly der: Buffer;
  /** SHA-256 of the DER: a retry with the same token must send the same CSR. */
  readonly sha256: string;
  readonly commonNames: readonly string[];
  readonly subjectPublicKeyInfo: Buffer;
  /** The subjectPublicKey BIT STRING contents, for key identifiers. */
  readonly subjectPublicKeyBits: Buffer;
  /** SHA-256 of the SubjectPublicKeyInfo: how key reuse across devices is found. */
  readonly spkiSha256: string;
  readonly publicKey: KeyObject;
  readonly key: KeyDescription;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly signedBytes: Buffer;
}

const PEM_PATTERN = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/\r\n]+={0,2}\s*$/;

const malformed = (message: string, cause?: unknown) =>
  new ImprintError('csr_malformed', message, cause === undefined ? {} : { cause });

/** Decodes PEM or bare base64 into DER bytes, refusing anything else. */
export function decodeCsrText(text: string): Buffer {
  const trimmed = text.trim();
  const pem = PEM_PATTERN.exec(trimmed + '\n');
  let base64: string;
  if (pem) {
    if ((pem[1] ?? '') !== (pem[3] ?? '')) throw malformed('PEM BEGIN and END lines do not match');
    base64 = pem[2]!;
  } else if (trimmed.startsWith('-----')) {
    throw malformed('expected one PEM block labelled CERTIFICATE REQUEST');
  } else if (BASE64_PATTERN.test(trimmed)) {
    base64 = trimmed;
  } else {
    throw malformed('CSR must be PEM or base64-encoded DER');
  }
  const compact = base64.replace(/[\r\n]/g, '');
  if (compact.length % 4 !== 0 || /=[^=]/.test(compact)) throw malformed('CSR base64 is not well formed');
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length === 0) throw malformed('CSR is empty');
  if (bytes.length > MAX_CSR_DER_BYTES) {
    throw malformed(`CSR is ${bytes.length} bytes of DER; at most ${MAX_CSR_DER_BYTES} are accepted`);
  }
  return bytes;
}

function describeKey(publicKey: KeyObject): KeyDescription {
  const details = publicKey.asymmetricKeyDetails ?? {};
  if (publicKey.asymmetricKeyType === 'ec') return { type: 'ec', curve: details.namedCurve ?? 'unknown' };
  if (publicKey.asymmetricKeyType === 'rsa') {
    return { type: 'rsa', bits: details.modulusLength ?? 0, exponent: details.publicExponent ?? 0n };
  }
  return { type: publicKey.asymmetricKeyType ?? 'unknown' };
}

function stringValue(value: unknown): string | undefined {
  const block = (value as { valueBlock?: { value?: unknown } } | undefined)?.valueBlock;
  return typeof block?.value === 'string' ? block.value : undefined;
}

/** INTEGER 0: PKCS#10 knows version 1 only. */
const VERSION_1 = Buffer.from([0x02, 0x01, 0x00]);

/** Parses a CSR from its text form; throws csr_malformed or csr_key_unsupported. */
export function parseCsr(text: string): ParsedCsr {
  try {
    return readCsr(decodeCsrText(text));
  } catch (error) {
    // asn1js and pkijs throw plain errors from deep inside on some malformed input (an OID
    // with 0x80 padding, for one): whatever they throw, the input is malformed.
    if (error instanceof ImprintError) throw error;
    throw malformed('CSR could not be read', error);
  }
}

function readCsr(der: Buffer): ParsedCsr {
  const asn1 = asn1js.fromBER(der);
  if (asn1.offset === -1) throw malformed('CSR is not valid ASN.1');
  if (asn1.offset !== der.length) throw malformed('CSR has trailing bytes after its DER');
  let csr: pkijs.CertificationRequest;
  try {
    csr = new pkijs.CertificationRequest({ schema: asn1.result });
  } catch (error) {
    throw malformed('CSR does not have the PKCS#10 structure', error);
  }

  // Raw slices for signing and hashing; asn1js has already checked the structure.
  let signedBytes: Buffer;
  let version: Buffer;
  let subjectPublicKeyInfo: Buffer;
  let subjectPublicKeyBits: Buffer;
  try {
    const outer = readElement(der);
    const [info] = childrenOf(der, outer);
    const infoParts = childrenOf(der, info!);
    signedBytes = bytesOf(der, info!);
    version = bytesOf(der, infoParts[0]!);
    subjectPublicKeyInfo = bytesOf(der, infoParts[2]!);
    const keyBits = childrenOf(der, infoParts[2]!)[1]!;
    if (keyBits.tag !== 0x03 || der[keyBits.contentStart] !== 0) throw new RangeError('bad key BIT STRING');
    subjectPublicKeyBits = contentOf(der, keyBits).subarray(1);
    if (outer.end !== der.length) throw new RangeError('outer length');
  } catch (error) {
    throw malformed('CSR is not strict DER', error);
  }
  // Read from the DER itself: pkijs reports a many-byte INTEGER as 0.
  if (!version.equals(VERSION_1)) throw malformed('CSR version must be 1 (encoded 0)');

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: subjectPublicKeyInfo, format: 'der', type: 'spki' });
  } catch (error) {
    throw new ImprintError('csr_key_unsupported', 'CSR public key cannot be read (unknown algorithm or invalid key)', {
      cause: error,
    });
  }

  const commonNames: string[] = [];
  for (const attribute of csr.subject.typesAndValues) {
    if (attribute.type !== OID.commonName) continue;
    const value = stringValue(attribute.value);
    if (value === undefined) throw malformed('CSR common name is not a string');
    commonNames.push(value);
  }

  return {
    der,
    sha256: createHash('sha256').update(der).digest('hex'),
    commonNames,
    subjectPublicKeyInfo,
    subjectPublicKeyBits,
    spkiSha256: createHash('sha256').update(subjectPublicKeyInfo).digest('hex'),
    publicKey,
    key: describeKey(publicKey),
    signatureAlgorithm: csr.signatureAlgorithm.algorithmId,
    signature: Buffer.from(csr.signatureValue.valueBlock.valueHexView),
    signedBytes,
  };
}

const SIGNATURE_DIGESTS: Readonly<Record<string, { keyType: string; digest: string }>> = {
  [OID.ecdsaWithSha256]: { keyType: 'ec', digest: 'sha256' },
  [OID.ecdsaWithSha384]: { keyType: 'ec', digest: 'sha384' },
  [OID.ecdsaWithSha512]: { keyType: 'ec', digest: 'sha512' },
  [OID.sha256WithRsa]: { keyType: 'rsa', digest: 'sha256' },
  [OID.sha384WithRsa]: { keyType: 'rsa', digest: 'sha384' },
  [OID.sha512WithRsa]: { keyType: 'rsa', digest: 'sha512' },
};

/**
 * Proof of possession: true when the CSR's signature verifies with its own key under a
 * signature algorithm that fits that key type.
 */
export function csrSignatureVerifies(csr: ParsedCsr): boolean {
  const algorithm = SIGNATURE_DIGESTS[csr.signatureAlgorithm];
  if (!algorithm || algorithm.keyType !== csr.publicKey.asymmetricKeyType) return false;
  try {
    return verify(algorithm.digest, csr.signedBytes, { key: csr.publicKey, dsaEncoding: 'der' }, csr.signature);
  } catch {
    return false;
  }
}
