/**
 * The device side of SCEP (RFC 8894): the self-signed certificate a first enrollment signs
 * with, the pkiMessage (a SignedData over an EnvelopedData to the RA holding the CSR), and
 * reading the RA's CertRep. Built with pkijs/asn1js and Node's crypto, as a device's SCEP
 * library would; it shares no code with the server's SCEP side.
 *
 * SCEP encrypts the reply to the certificate that signed the request (3.3.2), with RSA key
 * transport: a SCEP device holds an RSA key, and for a PKCSReq it is the CSR's own key
 * (2.3: the self-signed certificate "SHOULD use the same subject name and key as in the
 * PKCS #10 request"; imprint requires it).
 */
import { X509Certificate, constants, createCipheriv, createDecipheriv, createHash, privateDecrypt, publicEncrypt, randomBytes, verify, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import * as der from '../src/asn1/der.js';
import { commonNameOf, signatureAlgorithmOf, signWith, spkiOf, type DeviceKey } from './csr.js';

/** SCEP's attributes (RFC 8894 3.2.1.2) and the CMS ones around them. */
const OID = {
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  keyUsage: '2.5.29.15',
} as const;

/** messageType values (RFC 8894 3.2.1.2). */
export const ScepMessageType = { PKCSReq: '19', RenewalReq: '17' } as const;

/** failInfo names by value (RFC 8894 3.2.1.4). */
const FAIL_INFO = ['badAlg', 'badMessageCheck', 'badRequest', 'badTime', 'badCertId'];

const ab = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
const buf = (view: ArrayBuffer | Uint8Array): Buffer => Buffer.from(view instanceof Uint8Array ? view : new Uint8Array(view));

/** The RA certificate requests are encrypted to, read from GetCACert and checked against the root. */
export interface ScepRa {
  readonly der: Buffer;
  readonly certificate: X509Certificate;
}

/**
 * Picks the RA out of a GetCACert answer (degenerate PKCS#7: RA, issuing CA, root) and
 * checks the chain up to the root the device trusts: over http:// nothing else vouches for it.
 */
export function raFromCaCertificates(pkcs7: Buffer, rootPem: string): ScepRa {
  const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(pkcs7)).content });
  const certificates = (signed.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate).map((c) => new X509Certificate(buf(c.toSchema().toBER(false))));
  const root = new X509Certificate(rootPem);
  const ra = certificates.find((c) => c.publicKey.asymmetricKeyType === 'rsa' && !c.ca);
  const issuer = ra && certificates.find((c) => c.ca && ra.checkIssued(c) && ra.verify(c.publicKey));
  if (!ra || !issuer || !issuer.verify(root.publicKey)) throw new Error('GetCACert: no RSA RA certificate that chains to the root');
  return { der: ra.raw, certificate: ra };
}

/**
 * The self-signed certificate a device signs its first request with (RFC 8894 2.3):
 * its CSR's subject and key, keyUsage digitalSignature and keyEncipherment.
 */
export function selfSignedCertificate(key: DeviceKey, commonName: string, now = new Date()): Buffer {
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const name = commonNameOf(commonName);
  const keyUsage = der.sequence(der.objectIdentifier(OID.keyUsage), der.boolean(true), der.octetString(der.tlv(0x03, Buffer.from([0x05, 0xa0]))));
  const validity = der.sequence(der.time(new Date(now.getTime() - 60_000)), der.time(new Date(now.getTime() + 86_400_000)));
  const algorithm = signatureAlgorithmOf(key);
  const tbs = der.sequence(der.explicit(0, der.smallInteger(2)), der.unsignedInteger(serial), algorithm, name, validity, name, spkiOf(key), der.explicit(3, der.sequence(keyUsage)));
  const { signature } = signWith(key, tbs);
  return der.sequence(tbs, algorithm, der.bitString(signature));
}

/** RFC 8894 3.2.1.1: the transactionID is a hash of the requester's public key, here SHA-256 in hex. */
export const transactionIdOf = (key: DeviceKey): string => createHash('sha256').update(spkiOf(key)).digest('hex');

const attribute = (type: string, value: asn1js.AsnType) => new pkijs.Attribute({ type, values: [value] });
const issuerAndSerial = (certificate: pkijs.Certificate) => new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber });

/** EnvelopedData of `content` to the RA: AES-256-CBC, the key by RSA PKCS#1 v1.5 key transport (RFC 8894 3.2.2). */
function envelopeTo(ra: ScepRa, content: Buffer): Buffer {
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()]);
  const encryptedKey = publicEncrypt({ key: ra.certificate.publicKey, padding: constants.RSA_PKCS1_PADDING }, key);
  const enveloped = new pkijs.EnvelopedData({
    version: 0,
    recipientInfos: [
      new pkijs.RecipientInfo({
        variant: 1,
        value: new pkijs.KeyTransRecipientInfo({
          version: 0,
          rid: issuerAndSerial(pkijs.Certificate.fromBER(ab(ra.der))),
          keyEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() }),
          encryptedKey: new asn1js.OctetString({ valueHex: ab(encryptedKey) }),
        }),
      }),
    ],
    encryptedContentInfo: new pkijs.EncryptedContentInfo({
      contentType: OID.data,
      contentEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.aes256Cbc, algorithmParams: new asn1js.OctetString({ valueHex: ab(iv) }) }),
      encryptedContent: new asn1js.OctetString({ valueHex: ab(encrypted) }),
    }),
  });
  return buf(new pkijs.ContentInfo({ contentType: OID.envelopedData, content: enveloped.toSchema() }).toSchema().toBER(false));
}

/** What a pkiMessage is made of. */
export interface PkiMessageParts {
  readonly messageType: (typeof ScepMessageType)[keyof typeof ScepMessageType];
  readonly transactionId: string;
  readonly senderNonce: Buffer;
  readonly csrDer: Buffer;
  /** The certificate that signs: self-signed for PKCSReq, the current one for RenewalReq. */
  readonly signerCertificate: Buffer;
  /** Its key. */
  readonly signerKey: DeviceKey;
}

/** A PKCSReq or RenewalReq pkiMessage (RFC 8894 3.2, 3.3.1), DER. */
export function buildPkiMessage(ra: ScepRa, parts: PkiMessageParts): Buffer {
  const content = envelopeTo(ra, parts.csrDer);
  const signer = pkijs.Certificate.fromBER(ab(parts.signerCertificate));
  const attributes = [
    attribute(OID.contentType, new asn1js.ObjectIdentifier({ value: OID.data })),
    attribute(OID.messageDigest, new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(content).digest()) })),
    attribute(OID.messageType, new asn1js.PrintableString({ value: parts.messageType })),
    attribute(OID.transactionID, new asn1js.PrintableString({ value: parts.transactionId })),
    attribute(OID.senderNonce, new asn1js.OctetString({ valueHex: ab(parts.senderNonce) })),
  ];
  // RFC 5652 5.4: the signature covers the attributes as a DER SET OF, sorted by encoding.
  const encoded = (a: pkijs.Attribute) => buf(a.toSchema().toBER(false));
  attributes.sort((a, b) => Buffer.compare(encoded(a), encoded(b)));
  const toSign = buf(new asn1js.Set({ value: attributes.map((a) => a.toSchema()) }).toBER(false));
  const { signature } = signWith(parts.signerKey, toSign);
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 })],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data, eContent: new asn1js.OctetString({ valueHex: ab(content) }) }),
    certificates: [signer],
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: issuerAndSerial(signer),
        digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256 }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes }),
        signatureAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() }),
        signature: new asn1js.OctetString({ valueHex: ab(signature) }),
      }),
    ],
  });
  return buf(new pkijs.ContentInfo({ contentType: OID.signedData, content: signedData.toSchema(true) }).toSchema().toBER(false));
}

/** What a CertRep said. */
export type CertRepResult =
  | { readonly status: 'success'; readonly certificate: Buffer }
  | { readonly status: 'failure'; readonly failInfo: string }
  | { readonly status: 'pending' };

const textOf = (attributes: readonly pkijs.Attribute[], oid: string): string | undefined => {
  const value = attributes.find((a) => a.type === oid)?.values[0] as asn1js.PrintableString | undefined;
  return typeof value?.valueBlock?.value === 'string' ? value.valueBlock.value : undefined;
};
const octetsOf = (attributes: readonly pkijs.Attribute[], oid: string): Buffer | undefined => {
  const value = attributes.find((a) => a.type === oid)?.values[0];
  return value instanceof asn1js.OctetString ? buf(value.valueBlock.valueHexView) : undefined;
};

/** RSAES-PKCS1-v1_5 unpadding (Node 20 refuses the padding in privateDecrypt; this is the device's own reply). */
function rsaDecrypt(key: KeyObject, encrypted: Buffer): Buffer {
  const em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, encrypted);
  const separator = em.indexOf(0, 2);
  if (em[0] !== 0 || em[1] !== 2 || separator < 10) throw new Error('CertRep: the content key does not decrypt');
  return em.subarray(separator + 1);
}

/**
 * Reads the RA's CertRep (RFC 8894 3.3.2): checks the RA's signature, the digest, that it
 * answers our transaction and nonce, and on SUCCESS opens the envelope with the key that
 * signed the request and returns the issued certificate.
 */
export function readCertRep(certRep: Buffer, expected: { ra: ScepRa; transactionId: string; senderNonce: Buffer; recipientKey: DeviceKey; commonName: string }): CertRepResult {
  const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(certRep)).content });
  const signer = signed.signerInfos[0];
  const attributes = signer?.signedAttrs?.attributes ?? [];
  if (!signer?.signedAttrs) throw new Error('CertRep: not signed');
  const signedAttrs = buf(signer.signedAttrs.encodedValue);
  signedAttrs[0] = 0x31;
  if (!verify('sha256', signedAttrs, expected.ra.certificate.publicKey, buf(signer.signature.valueBlock.valueHexView))) throw new Error('CertRep: the RA signature does not verify');
  if (textOf(attributes, OID.transactionID) !== expected.transactionId) throw new Error('CertRep: another transaction');
  if (!octetsOf(attributes, OID.recipientNonce)?.equals(expected.senderNonce)) throw new Error('CertRep: recipientNonce is not our senderNonce');
  const content = signed.encapContentInfo.eContent ? buf(signed.encapContentInfo.eContent.getValue()) : Buffer.alloc(0);
  if (!octetsOf(attributes, OID.messageDigest)?.equals(createHash('sha256').update(content).digest())) throw new Error('CertRep: the digest does not match');
  const status = textOf(attributes, OID.pkiStatus);
  if (status === '2') return { status: 'failure', failInfo: FAIL_INFO[Number(textOf(attributes, OID.failInfo))] ?? `failInfo ${textOf(attributes, OID.failInfo)}` };
  if (status === '3') return { status: 'pending' };
  if (status !== '0') throw new Error(`CertRep: pkiStatus ${status}`);

  const enveloped = new pkijs.EnvelopedData({ schema: pkijs.ContentInfo.fromBER(ab(content)).content });
  const recipient = enveloped.recipientInfos[0]?.value;
  if (!(recipient instanceof pkijs.KeyTransRecipientInfo)) throw new Error('CertRep: no key transport recipient');
  const algorithm = enveloped.encryptedContentInfo.contentEncryptionAlgorithm;
  if (algorithm.algorithmId !== OID.aes256Cbc || !(algorithm.algorithmParams instanceof asn1js.OctetString)) throw new Error('CertRep: unexpected content cipher');
  const key = rsaDecrypt(expected.recipientKey.privateKey, buf(recipient.encryptedKey.valueBlock.valueHexView));
  const encrypted = enveloped.encryptedContentInfo.encryptedContent;
  const encryptedBytes = encrypted?.idBlock.isConstructed
    ? Buffer.concat((encrypted.valueBlock.value as asn1js.OctetString[]).map((part) => buf(part.valueBlock.valueHexView)))
    : buf(encrypted?.valueBlock.valueHexView ?? new Uint8Array());
  const decipher = createDecipheriv('aes-256-cbc', key, buf(algorithm.algorithmParams.valueBlock.valueHexView));
  const certsOnly = Buffer.concat([decipher.update(encryptedBytes), decipher.final()]);
  const inner = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(certsOnly)).content });
  const certificates = (inner.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate).map((c) => buf(c.toSchema().toBER(false)));
  const issued = certificates.find((c) => new X509Certificate(c).subject === `CN=${expected.commonName}`) ?? certificates[0];
  if (!issued) throw new Error('CertRep: SUCCESS without a certificate');
  return { status: 'success', certificate: issued };
}
