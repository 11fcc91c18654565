/**
 * Reads PKCS#10 certification requests (RFC 2986) from untrusted input: PEM or base64
 * DER, strictly DER, at most MAX_CSR_DER_BYTES, nesting and element count bounded. The
 * signature is checked with Node's crypto on the raw CertificationRequestInfo bytes.
 */
import { hash, verify } from 'node:crypto';
import { bytesOf, checkWellFormed, childrenOf, contentOf, decodeOid, readElement, type DerElement } from '../asn1/der-reader.js';
import { ImprintError } from '../errors.js';
import { OID } from './oids.js';
import { describePublicKey, importCheckedKey, type KeyDescription } from './public-key.js';

export type { KeyDescription } from './public-key.js';

/** The DER size cap for a CSR (DESIGN: 16 KiB). */
export const MAX_CSR_DER_BYTES = 16 * 1024;

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
  /** What the key is, read without any native call (see public-key.ts). */
  readonly key: KeyDescription;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly signedBytes: Buffer;
}

const PEM_PATTERN = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;
// Tested on trimmed text, so nothing may follow the padding: a trailing `\s*` here could
// also match the newlines the class takes, and backtracking through 64 KiB of them cost ~1 s.
const BASE64_PATTERN = /^[A-Za-z0-9+/\r\n]+={0,2}$/;

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

/** One-shot decodes keep no state between calls, so one decoder serves every CSR. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** DirectoryString and the string types found in the wild, decoded; undefined for anything else. */
function directoryString(der: Buffer, element: DerElement): string | undefined {
  const content = contentOf(der, element);
  switch (element.tag) {
    case 0x0c: // UTF8String
      return STRICT_UTF8.decode(content);
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString (read as Latin-1, as everyone does)
      return content.toString('latin1');
    case 0x1e: // BMPString: UTF-16BE
      if (content.length % 2) return undefined;
      return Buffer.from(content).swap16().toString('utf16le');
    default:
      return undefined;
  }
}

/** INTEGER 0: PKCS#10 knows version 1 only. */
const VERSION_1 = Buffer.from([0x02, 0x01, 0x00]);

/** Parses a CSR from its text form; throws csr_malformed or csr_key_unsupported. */
export function parseCsr(text: string): ParsedCsr {
  try {
    return readCsr(decodeCsrText(text));
  } catch (error) {
    if (error instanceof ImprintError) throw error;
    throw malformed(`CSR is not a strict DER PKCS#10 request (${(error as Error).message})`, error);
  }
}

/**
 * Reads the structure with the strict DER walker (a generic ASN.1 parser cost more than
 * the rest of an enrollment): CertificationRequest ::= SEQUENCE { info, algorithm,
 * signature BIT STRING }, info ::= SEQUENCE { version 0, subject Name, SPKI, [0] attributes }.
 */
function readCsr(der: Buffer): ParsedCsr {
  const outer = readElement(der);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new RangeError('not one SEQUENCE');
  checkWellFormed(der, outer);
  const parts = childrenOf(der, outer);
  const [info, algorithm, signature] = parts;
  if (parts.length !== 3 || info!.tag !== 0x30 || algorithm!.tag !== 0x30 || signature!.tag !== 0x03) throw new RangeError('not a CertificationRequest');
  const infoParts = childrenOf(der, info!);
  const [version, subject, spki, attributes] = infoParts;
  if (infoParts.length < 3 || infoParts.length > 4 || subject!.tag !== 0x30 || spki!.tag !== 0x30 || (attributes && attributes.tag !== 0xa0)) {
    throw new RangeError('not a CertificationRequestInfo');
  }
  if (!bytesOf(der, version!).equals(VERSION_1)) throw malformed('CSR version must be 1 (encoded 0)');

  const spkiParts = childrenOf(der, spki!);
  const keyBits = spkiParts[1];
  if (spkiParts.length !== 2 || spkiParts[0]!.tag !== 0x30 || keyBits!.tag !== 0x03 || der[keyBits!.contentStart] !== 0) throw new RangeError('bad SubjectPublicKeyInfo');
  const [algorithmOid] = childrenOf(der, algorithm!);
  if (!algorithmOid || algorithmOid.tag !== 0x06) throw new RangeError('bad signature AlgorithmIdentifier');
  if (der[signature!.contentStart] !== 0 || signature!.end === signature!.contentStart) throw new RangeError('bad signature BIT STRING');

  const commonNames: string[] = [];
  for (const rdn of childrenOf(der, subject!)) {
    if (rdn.tag !== 0x31) throw new RangeError('bad RelativeDistinguishedName');
    for (const pair of childrenOf(der, rdn)) {
      const [type, value, ...rest] = childrenOf(der, pair);
      if (pair.tag !== 0x30 || type?.tag !== 0x06 || !value || rest.length) throw new RangeError('bad AttributeTypeAndValue');
      if (decodeOid(contentOf(der, type)) !== OID.commonName) continue;
      let name: string | undefined;
      try {
        name = directoryString(der, value);
      } catch {
        name = undefined; // invalid UTF-8
      }
      if (name === undefined) throw malformed('CSR common name is not a string');
      commonNames.push(name);
    }
  }

  const subjectPublicKeyInfo = bytesOf(der, spki!);
  const subjectPublicKeyBits = contentOf(der, keyBits!).subarray(1);
  return {
    der,
    sha256: hash('sha256', der),
    commonNames,
    subjectPublicKeyInfo,
    subjectPublicKeyBits,
    spkiSha256: hash('sha256', subjectPublicKeyInfo),
    key: describePublicKey(der, spkiParts[0]!, subjectPublicKeyBits),
    signatureAlgorithm: decodeOid(contentOf(der, algorithmOid)),
    signature: contentOf(der, signature!).subarray(1),
    signedBytes: bytesOf(der, info!),
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
 * signature algorithm that fits that key type. The key is imported only here, after
 * policy has accepted what `key` says it is.
 */
export function verifyCsrSignature(csr: ParsedCsr): boolean {
  const algorithm = SIGNATURE_DIGESTS[csr.signatureAlgorithm];
  if (!algorithm || algorithm.keyType !== csr.key.type) return false;
  try {
    const publicKey = importCheckedKey(csr.key, csr.subjectPublicKeyInfo, csr.subjectPublicKeyBits);
    return publicKey !== undefined && verify(algorithm.digest, csr.signedBytes, { key: publicKey, dsaEncoding: 'der' }, csr.signature);
  } catch {
    return false;
  }
}
