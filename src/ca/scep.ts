/**
 * SCEP (RFC 8894) messages: reading a client's signed and enveloped pkiMessage and
 * building the RA's CertRep, with pkijs and asn1js (what a caller needs of a message
 * without loading them is in scep-message.ts). Pure PKI: no HTTP, no SQL, no policy.
 * Client bytes are read with asn1js under its default node limit; a client's public key
 * reaches a native call only after describePublicKey has checked it (public-key.ts). The
 * RA key only decrypts and signs here.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, constants, privateDecrypt, publicEncrypt, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytesOf, checkBerBounds, checkWellFormed, childrenOf, contentOf, decodeOid, readElement, type WalkLimits } from '../asn1/der-reader.js';
import type { CertificateParts } from './certificate-info.js';
import { CHALLENGE_PASSWORD_OID, CMS_OID, certsOnlyCms } from './cms.js';
import { OID } from './oids.js';
import { describePublicKey, importCheckedKey } from './public-key.js';
import { MessageType, ScepMessageError, type FailInfo, type ScepRequest } from './scep-message.js';

/** SCEP's signed attributes (RFC 8894 3.2.1.2). */
export const SCEP_OID = {
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
} as const;

const CMS_ATTR = { contentType: '1.2.840.113549.1.9.3', messageDigest: '1.2.840.113549.1.9.4' } as const;

/** failInfo codes (RFC 8894 3.2.1.4). */
const FAIL_INFO_CODE: Record<FailInfo, string> = { badAlg: '0', badMessageCheck: '1', badRequest: '2', badTime: '3', badCertId: '4' };

const DIGESTS: Record<string, string> = { [OID.sha1]: 'sha1', [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };

/** Content ciphers SCEP clients use. Single DES is what Debian's scepclient 2.1 sends whatever GetCACaps says. */
const CIPHERS: Record<string, { name: string; keyLength: number; ivLength: number }> = {
  '1.3.14.3.2.7': { name: 'des-cbc', keyLength: 8, ivLength: 8 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24, ivLength: 16 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
};
const AES256_CBC = '2.16.840.1.101.3.4.1.42';

const ab = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
const buf = (view: ArrayBuffer | Uint8Array): Buffer => Buffer.from(view instanceof Uint8Array ? view : new Uint8Array(view));

/** Decrypts with a named CBC cipher; OpenSSL 3 keeps single DES in its legacy provider only, and DES-EDE3 with one key three times is DES. */
function decipher(name: string, key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const [cipher, cipherKey] = name === 'des-cbc' ? ['des-ede3-cbc', Buffer.concat([key, key, key])] : [name, key];
  const d = createDecipheriv(cipher, cipherKey, iv);
  return Buffer.concat([d.update(data), d.final()]);
}

/**
 * RSAES-PKCS1-v1_5 decryption with implicit rejection. Node 20 refuses PKCS#1 v1.5 in
 * privateDecrypt (CVE-2023-46809, the Marvin attack) and WebCrypto has none, yet SCEP
 * clients use it for key transport. So we decrypt raw (RSA_NO_PADDING) and unpad here;
 * when the padding is wrong, or the key is not the length the content cipher needs, we
 * return a key derived from the ciphertext under a secret (HMAC-SHA256) instead of an
 * error, as OpenSSL 3.2's implicit rejection does: a bad ciphertext then fails later in
 * the content decryption like any other corrupt message, and an attacker learns nothing
 * from which step failed. The padding check below avoids data-dependent branches as far
 * as JavaScript allows.
 */
export function rsaKeyTransportDecrypt(key: KeyObject, encryptedKey: Buffer, keyLength: number, secret: Buffer): Buffer {
  const synthetic = createHmac('sha256', secret).update(encryptedKey).digest();
  const fallback = Buffer.concat([synthetic, createHmac('sha256', secret).update(synthetic).digest()]).subarray(0, keyLength);
  let em: Buffer;
  try {
    em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, encryptedKey);
  } catch {
    return fallback;
  }
  // EM = 0x00 || 0x02 || PS (>= 8 non-zero bytes) || 0x00 || M, with |M| = keyLength.
  const separator = em.length - keyLength - 1;
  let bad = em[0]! | (em[1]! ^ 0x02) | (separator < 10 ? 1 : 0);
  for (let i = 2; i < em.length - keyLength - 1 && i < em.length; i++) bad |= em[i] === 0 ? 1 : 0;
  bad |= separator >= 0 && separator < em.length ? em[separator]! : 1;
  const message = em.subarray(em.length - keyLength);
  const mask = bad === 0 ? 0xff : 0x00;
  const out = Buffer.alloc(keyLength);
  for (let i = 0; i < keyLength; i++) out[i] = (message[i]! & mask) | (fallback[i]! & ~mask);
  return out;
}

/** One attribute's first value from a SignedAttributes list. */
function attribute(attributes: readonly pkijs.Attribute[], oid: string): asn1js.AsnType | undefined {
  return attributes.find((a) => a.type === oid)?.values[0] as asn1js.AsnType | undefined;
}

const textOf = (value: asn1js.AsnType | undefined): string | undefined =>
  value && 'valueBlock' in value && typeof (value as asn1js.PrintableString).valueBlock.value === 'string'
    ? ((value as asn1js.PrintableString).valueBlock.value as string)
    : undefined;
/**
 * RFC 8894 3.2.1.1: a PrintableString, in practice a hash of the key in hex or base64
 * (24-128 characters). Anything else is not echoed back into the CertRep: the message
 * is then too broken to answer in SCEP, and the caller's 400 says so.
 */
const TRANSACTION_ID = /^[A-Za-z0-9 '()+,\-./:=?]{1,256}$/;
const transactionIdOf = (value: asn1js.AsnType | undefined): string | undefined => {
  const text = textOf(value);
  return text !== undefined && TRANSACTION_ID.test(text) ? text : undefined;
};
const octetsOf = (value: asn1js.AsnType | undefined): Buffer | undefined =>
  value instanceof asn1js.OctetString ? buf(value.valueBlock.valueHexView) : undefined;

/**
 * What a client's CMS message or CSR may hold: a PKCSReq is ~90 elements, a CSR ~30-60.
 * asn1js spends ~10 us an element (an OID ~12), so 64 KiB of tiny elements cost it
 * 100-250 ms before its own 10,000-node cap refused them.
 */
const CLIENT_BER_LIMITS: WalkLimits = { depth: 24, elements: 512 };

/**
 * Client bytes as one asn1js element, bounded first (checkBerBounds) and decoded without
 * looking into OCTET STRINGs: what is inside one (the envelope, the CSR) is decoded here
 * on its own when it is needed. The whole input must be the element: pkijs alone would
 * read a prefix.
 */
function decodeClientBer(bytes: Buffer): asn1js.AsnType {
  checkBerBounds(bytes, CLIENT_BER_LIMITS);
  const parsed = asn1js.fromBER(bytes, { parseEmbedded: false });
  if (parsed.offset === -1) throw new Error(parsed.result.error);
  if (parsed.offset !== bytes.length) throw new Error('bytes after the message');
  return parsed.result;
}

const sameIssuerSerial = (certificate: pkijs.Certificate, sid: pkijs.IssuerAndSerialNumber): boolean =>
  certificate.issuer.isEqual(sid.issuer) && certificate.serialNumber.isEqual(sid.serialNumber);

/**
 * Reads a client pkiMessage (RFC 8894 3.2): a SignedData whose signer signs the SCEP
 * attributes, carrying an EnvelopedData to the RA that holds the PKCS#10 request. The
 * signature is verified with the certificate the message carries (self-signed for a first
 * enrollment; who that certificate is, is the caller's concern).
 */
export async function readPkiMessage(der: Buffer, ra: { certificate: Buffer; key: KeyObject; secret: Buffer }): Promise<ScepRequest> {
  let signed: pkijs.SignedData;
  try {
    const info = new pkijs.ContentInfo({ schema: decodeClientBer(der) });
    if (info.contentType !== CMS_OID.signedData) throw new Error('not SignedData');
    signed = new pkijs.SignedData({ schema: info.content });
  } catch (error) {
    throw new ScepMessageError('badRequest', `not a CMS SignedData: ${(error as Error).message}`);
  }
  const signer = signed.signerInfos[0];
  const attributes = signer?.signedAttrs?.attributes ?? [];
  const transactionId = transactionIdOf(attribute(attributes, SCEP_OID.transactionID));
  const senderNonce = octetsOf(attribute(attributes, SCEP_OID.senderNonce));
  const messageType = textOf(attribute(attributes, SCEP_OID.messageType));
  const sid = signer?.sid;
  const signerCert = sid instanceof pkijs.IssuerAndSerialNumber
    ? (signed.certificates ?? []).find((c): c is pkijs.Certificate => c instanceof pkijs.Certificate && sameIssuerSerial(c, sid))
    : undefined;
  const signerCertificate = signerCert ? buf(signerCert.toSchema().toBER(false)) : undefined;
  const partial = { transactionId, senderNonce, signerCertificate, messageType };
  if (!signer || !signer.signedAttrs || !transactionId || !senderNonce || !messageType || !signerCertificate) {
    throw new ScepMessageError('badRequest', 'the message lacks a signer, its certificate or a SCEP attribute', partial);
  }
  const digest = DIGESTS[signer.digestAlgorithm.algorithmId];
  if (!digest) throw new ScepMessageError('badAlg', 'unsupported digest algorithm', partial);
  const content = signed.encapContentInfo.eContent;
  if (!content) throw new ScepMessageError('badRequest', 'the message has no content', partial);
  const contentBytes = buf(content.getValue());
  const messageDigest = octetsOf(attribute(attributes, CMS_ATTR.messageDigest));
  if (!messageDigest || !createHash(digest).update(contentBytes).digest().equals(messageDigest)) {
    throw new ScepMessageError('badMessageCheck', 'the message digest does not match', partial);
  }
  // RFC 5652 5.4: the signature covers the attributes DER-encoded as a SET OF.
  const signedAttrs = Buffer.from(signer.signedAttrs.encodedValue.byteLength ? buf(signer.signedAttrs.encodedValue) : buf(signer.signedAttrs.toSchema().toBER(false)));
  signedAttrs[0] = 0x31;
  const signerKey = await checkedRsaKey(signerCertificate, partial);
  let verified = false;
  try {
    verified = verify(digest, signedAttrs, signerKey, buf(signer.signature.valueBlock.valueHexView));
  } catch {
    verified = false;
  }
  if (!verified) throw new ScepMessageError('badMessageCheck', 'the message signature does not verify', partial);
  const csrDer = openEnvelope(contentBytes, ra, partial);
  return { messageType, transactionId, senderNonce, signerCertificate, signerKey, csrDer, challengePassword: challengePasswordOf(csrDer) };
}

/** The fields of a certificate's TBSCertificate, read with the bounded DER walker (no native call). */
function tbsFields(der: Buffer) {
  const certificate = readElement(der);
  if (certificate.tag !== 0x30 || certificate.end !== der.length) throw new RangeError('not a certificate');
  checkWellFormed(der, certificate);
  const [tbs, algorithm, signature] = childrenOf(der, certificate);
  if (tbs?.tag !== 0x30 || algorithm?.tag !== 0x30 || signature?.tag !== 0x03) throw new RangeError('not a certificate');
  const fields = childrenOf(der, tbs);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = fields[offset];
  const issuer = fields[offset + 2];
  const spki = fields[offset + 5];
  if (serial?.tag !== 0x02 || issuer?.tag !== 0x30 || spki?.tag !== 0x30) throw new RangeError('not a certificate');
  return { tbs, algorithm, signature, serial, issuer, spki };
}

/**
 * The RSA key of the certificate that signed a request, as a KeyObject only after
 * describePublicKey has read every byte of it. RSA only: the CertRep is encrypted to it
 * by key transport (RFC 8894 3.5.2), which needs an RSA key.
 */
async function checkedRsaKey(certificate: Buffer, partial: ScepMessageError['partial']): Promise<KeyObject> {
  let key: KeyObject | undefined;
  try {
    const { spki } = tbsFields(certificate);
    const spkiDer = bytesOf(certificate, spki);
    const [algorithm, bits] = childrenOf(spkiDer, readElement(spkiDer));
    if (algorithm?.tag !== 0x30 || bits?.tag !== 0x03) throw new RangeError('not a SubjectPublicKeyInfo');
    const bitString = contentOf(spkiDer, bits);
    if (bitString[0] !== 0) throw new RangeError('public key BIT STRING has unused bits');
    const description = describePublicKey(spkiDer, algorithm, bitString.subarray(1));
    if (description.type !== 'rsa' || !('bits' in description)) {
      throw new ScepMessageError('badAlg', 'the signer certificate must hold an RSA key: the reply is encrypted to it', partial);
    }
    // The enrollment policy's RSA sizes: verifying a signature under a 16384-bit key with a
    // huge exponent costs milliseconds, and anyone may send a PKCSReq.
    if (description.bits < 2048 || description.bits > 4096 || description.exponent !== 65537n) {
      throw new ScepMessageError('badAlg', 'the signer key must be RSA 2048 to 4096 bits with exponent 65537', partial);
    }
    key = await importCheckedKey(description, spkiDer, bitString.subarray(1));
  } catch (error) {
    if (error instanceof ScepMessageError) throw error;
    throw new ScepMessageError('badMessageCheck', 'the signer certificate key is not valid', partial);
  }
  if (!key) throw new ScepMessageError('badAlg', 'the signer certificate key is not supported', partial);
  return key;
}

/**
 * True when the certificate that signed a request holds the CSR's own key, byte for byte
 * (the SubjectPublicKeyInfo DER of each). RFC 8894 2.3 says the self-signed certificate of
 * a first request "SHOULD use the same subject name and key as in the PKCS #10 request";
 * for a PKCSReq we require the key (see ScepService). Read with the bounded DER walker.
 */
export function signerHoldsCsrKey(request: Pick<ScepRequest, 'signerCertificate' | 'csrDer'>): boolean {
  try {
    const { spki } = tbsFields(request.signerCertificate);
    const csr = readElement(request.csrDer);
    if (csr.tag !== 0x30 || csr.end !== request.csrDer.length) return false;
    checkWellFormed(request.csrDer, csr);
    const [info] = childrenOf(request.csrDer, csr);
    const csrSpki = info?.tag === 0x30 ? childrenOf(request.csrDer, info)[2] : undefined;
    return csrSpki?.tag === 0x30 && bytesOf(request.csrDer, csrSpki).equals(bytesOf(request.signerCertificate, spki));
  } catch {
    return false;
  }
}

const SIGNATURE_HASHES: Record<string, string> = {
  [OID.ecdsaWithSha256]: 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  [OID.sha256WithRsa]: 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

/** What a client's certificate says about itself, read without trusting it. */
export interface ClaimedCertificate {
  /** Lowercase hex serial, as the store keys certificates. */
  readonly serial: string;
  /** Undefined when `issuer` signed it; else an OpenSSL-style verification error name. */
  readonly verificationError: string | undefined;
}

/**
 * Checks that a client's certificate names `issuer` (our issuing CA) as its issuer and
 * carries its signature, the step a TLS stack does before we look the certificate up.
 * Only the issuer's key (ours) is handed to native code; the client's certificate is read
 * with the DER walker. Validity dates are the store's concern (ClientAuthenticator).
 */
export function checkIssuedBy(certificate: Buffer, issuer: CertificateParts): ClaimedCertificate {
  let fields: ReturnType<typeof tbsFields>;
  try {
    fields = tbsFields(certificate);
  } catch {
    return { serial: '', verificationError: 'CERT_SIGNATURE_FAILURE' };
  }
  const serialBytes = contentOf(certificate, fields.serial);
  const serial = (serialBytes[0] === 0 && serialBytes.length > 1 ? serialBytes.subarray(1) : serialBytes).toString('hex');
  if (!bytesOf(certificate, fields.issuer).equals(issuer.subjectName)) return { serial, verificationError: 'UNABLE_TO_GET_ISSUER_CERT' };
  let verified = false;
  try {
    // The algorithm's OID too is the client's: a malformed one is a signature that fails.
    const [oid] = childrenOf(certificate, fields.algorithm);
    const hash = oid?.tag === 0x06 ? SIGNATURE_HASHES[decodeOid(contentOf(certificate, oid))] : undefined;
    const signature = contentOf(certificate, fields.signature);
    verified = hash !== undefined && signature[0] === 0 && verify(hash, bytesOf(certificate, fields.tbs), issuer.x509.publicKey, signature.subarray(1));
  } catch {
    verified = false;
  }
  return { serial, verificationError: verified ? undefined : 'CERT_SIGNATURE_FAILURE' };
}

/**
 * The bytes of an OCTET STRING that may be [0] IMPLICIT-tagged and, in BER, constructed
 * from segments (pkijs leaves an implicitly tagged encryptedContent untyped).
 */
function octetContent(value: asn1js.AsnType): Buffer {
  const block = (value as asn1js.OctetString).valueBlock as { value?: asn1js.AsnType[]; valueHexView?: Uint8Array };
  if ((value as asn1js.OctetString).idBlock.isConstructed) return Buffer.concat((block.value ?? []).map(octetContent));
  return buf(block.valueHexView ?? new Uint8Array());
}

/** The RA certificate, parsed once: it is ours and the same for every request. */
const raCertificates = new WeakMap<Buffer, pkijs.Certificate>();
function raCertificate(der: Buffer): pkijs.Certificate {
  let parsed = raCertificates.get(der);
  if (!parsed) raCertificates.set(der, (parsed = pkijs.Certificate.fromBER(ab(der))));
  return parsed;
}

/** Decrypts the EnvelopedData addressed to the RA. */
function openEnvelope(der: Buffer, ra: { certificate: Buffer; key: KeyObject; secret: Buffer }, partial: ScepMessageError['partial']): Buffer {
  let enveloped: pkijs.EnvelopedData;
  try {
    const info = new pkijs.ContentInfo({ schema: decodeClientBer(der) });
    if (info.contentType !== CMS_OID.envelopedData) throw new Error('not EnvelopedData');
    enveloped = new pkijs.EnvelopedData({ schema: info.content });
  } catch (error) {
    throw new ScepMessageError('badRequest', `not a CMS EnvelopedData: ${(error as Error).message}`, partial);
  }
  const raCert = raCertificate(ra.certificate);
  const recipient = enveloped.recipientInfos
    .map((info) => info.value)
    .find((value): value is pkijs.KeyTransRecipientInfo => value instanceof pkijs.KeyTransRecipientInfo && value.rid instanceof pkijs.IssuerAndSerialNumber && sameIssuerSerial(raCert, value.rid));
  if (!recipient) throw new ScepMessageError('badRequest', 'the message is not encrypted to this RA', partial);
  if (recipient.keyEncryptionAlgorithm.algorithmId !== OID.rsaEncryption) throw new ScepMessageError('badAlg', 'unsupported key transport', partial);
  const algorithm = enveloped.encryptedContentInfo.contentEncryptionAlgorithm;
  const cipher = CIPHERS[algorithm.algorithmId];
  const ivParam = algorithm.algorithmParams;
  if (!cipher || !(ivParam instanceof asn1js.OctetString) || ivParam.valueBlock.valueHexView.byteLength !== cipher.ivLength) {
    throw new ScepMessageError('badAlg', 'unsupported content encryption', partial);
  }
  const encrypted = enveloped.encryptedContentInfo.encryptedContent;
  if (!encrypted) throw new ScepMessageError('badRequest', 'the envelope is empty', partial);
  const cek = rsaKeyTransportDecrypt(ra.key, buf(recipient.encryptedKey.valueBlock.valueHexView), cipher.keyLength, ra.secret);
  try {
    return decipher(cipher.name, cek, buf(ivParam.valueBlock.valueHexView), octetContent(encrypted));
  } catch {
    throw new ScepMessageError('badMessageCheck', 'the envelope does not decrypt', partial);
  }
}

/** The challengePassword attribute of a CSR (RFC 2985 5.4.1), if any; the CSR itself is checked by the CSR policy. */
function challengePasswordOf(csrDer: Buffer): string | undefined {
  try {
    const csr = new pkijs.CertificationRequest({ schema: decodeClientBer(csrDer) });
    const value = csr.attributes?.find((a) => a.type === CHALLENGE_PASSWORD_OID)?.values[0] as asn1js.AsnType | undefined;
    return textOf(value);
  } catch {
    return undefined;
  }
}

/** What a CertRep says. */
export type CertRepResult = { readonly status: 'success'; readonly certificate: Buffer } | { readonly status: 'failure'; readonly failInfo: FailInfo };

const printable = (text: string) => new asn1js.PrintableString({ value: text });
const attr = (type: string, value: asn1js.AsnType) => new pkijs.Attribute({ type, values: [value] });
const issuerAndSerial = (certificate: pkijs.Certificate) =>
  new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });

/**
 * A CertRep (RFC 8894 3.3.2): signed by the RA with SHA-256; on success the issued
 * certificate as certs-only CMS, enveloped (AES-256-CBC, RSA key transport) to the
 * certificate that signed the request, which is the one the client holds the key of.
 */
export function buildCertRep(
  request: { transactionId: string; senderNonce: Buffer; signerCertificate: Buffer | undefined; signerKey?: KeyObject | undefined },
  result: CertRepResult,
  ra: { certificate: Buffer; key: KeyObject },
): Buffer {
  const raCert = raCertificate(ra.certificate);
  let content: Buffer | undefined;
  if (result.status === 'success') {
    if (!request.signerCertificate || !request.signerKey) throw new Error('a successful CertRep needs the requester certificate and its checked key');
    content = envelope(certsOnlyCms([result.certificate]), request.signerCertificate, request.signerKey);
  }
  const status = result.status === 'success' ? '0' : '2';
  const attributes = [
    attr(CMS_ATTR.contentType, new asn1js.ObjectIdentifier({ value: CMS_OID.data })),
    attr(CMS_ATTR.messageDigest, new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(content ?? Buffer.alloc(0)).digest()) })),
    attr(SCEP_OID.messageType, printable(MessageType.CertRep)),
    attr(SCEP_OID.pkiStatus, printable(status)),
    ...(result.status === 'failure' ? [attr(SCEP_OID.failInfo, printable(FAIL_INFO_CODE[result.failInfo]))] : []),
    attr(SCEP_OID.transactionID, printable(request.transactionId)),
    attr(SCEP_OID.senderNonce, new asn1js.OctetString({ valueHex: ab(randomBytes(16)) })),
    attr(SCEP_OID.recipientNonce, new asn1js.OctetString({ valueHex: ab(request.senderNonce) })),
  ];
  // DER sorts a SET OF by encoding (X.690 11.6); verifiers that re-encode (Go's) rely on it.
  const encoded = (a: pkijs.Attribute) => Buffer.from(a.toSchema().toBER(false));
  attributes.sort((a, b) => Buffer.compare(encoded(a), encoded(b)));
  const signedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes });
  const toSign = Buffer.from(new asn1js.Set({ value: attributes.map((a) => a.toSchema()) }).toBER(false));
  const signature = sign('sha256', toSign, ra.key);
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 })],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({
      eContentType: CMS_OID.data,
      ...(content ? { eContent: new asn1js.OctetString({ valueHex: ab(content) }) } : {}),
    }),
    certificates: [raCert],
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: issuerAndSerial(raCert),
        digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 }),
        signedAttrs,
        signatureAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256WithRsa, algorithmParams: new asn1js.Null() }),
        signature: new asn1js.OctetString({ valueHex: ab(signature) }),
      }),
    ],
  });
  const info = new pkijs.ContentInfo({ contentType: CMS_OID.signedData, content: signedData.toSchema(true) });
  return Buffer.from(info.toSchema().toBER(false));
}

/** EnvelopedData of `content` to an RSA certificate: AES-256-CBC content, PKCS#1 v1.5 key transport (what SCEP clients decrypt). */
function envelope(content: Buffer, recipientDer: Buffer, publicKey: KeyObject): Buffer {
  const recipient = pkijs.Certificate.fromBER(ab(recipientDer));
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()]);
  const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, key);
  const enveloped = new pkijs.EnvelopedData({
    version: 0,
    recipientInfos: [
      new pkijs.RecipientInfo({
        variant: 1,
        value: new pkijs.KeyTransRecipientInfo({
          version: 0,
          rid: issuerAndSerial(recipient),
          keyEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() }),
          encryptedKey: new asn1js.OctetString({ valueHex: ab(encryptedKey) }),
        }),
      }),
    ],
    encryptedContentInfo: new pkijs.EncryptedContentInfo({
      contentType: CMS_OID.data,
      contentEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: AES256_CBC, algorithmParams: new asn1js.OctetString({ valueHex: ab(iv) }) }),
      encryptedContent: new asn1js.OctetString({ valueHex: ab(encrypted) }),
    }),
  });
  const info = new pkijs.ContentInfo({ contentType: CMS_OID.envelopedData, content: enveloped.toSchema() });
  return Buffer.from(info.toSchema().toBER(false));
}
