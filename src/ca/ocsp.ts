/**
 * OCSP (RFC 6960): reading requests from untrusted bytes and building BasicOCSPResponses
 * signed by the issuing CA. Status lookup is the caller's; this module is pure encoding.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { bytesOf, checkWellFormed, childrenOf, contentOf, decodeOid, readElement, type DerElement } from '../asn1/der-reader.js';
import type { SigningKey } from './certificate-builder.js';
import { OID } from './oids.js';
import { CRL_REASON_CODES } from './revocation-reasons.js';

/** One CertID of a request, with its raw DER to echo in the response. */
export interface OcspCertId {
  readonly der: Buffer;
  readonly hashAlgorithm: string;
  readonly issuerNameHash: Buffer;
  readonly issuerKeyHash: Buffer;
  /** Lowercase hex, no leading zero byte. */
  readonly serial: string;
}

/** A parsed OCSP request. */
export interface OcspRequest {
  readonly certIds: readonly OcspCertId[];
  /** The nonce extension's extnValue contents, echoed as is. */
  readonly nonce: Buffer | undefined;
}

/** A request we cannot read; answered with malformedRequest. */
export class MalformedOcspRequestError extends Error {}

const MAX_CERT_IDS = 16;

/** OCSPResponseStatus values (RFC 6960 4.2.1). */
export const OcspResponseStatus = { successful: 0, malformedRequest: 1, internalError: 2, tryLater: 3, unauthorized: 6 } as const;

const HASHES: Readonly<Record<string, string>> = {
  [OID.sha1]: 'sha1',
  [OID.sha256]: 'sha256',
  [OID.sha384]: 'sha384',
  [OID.sha512]: 'sha512',
};

const NONCE_EXTENSION_OID = der.objectIdentifier(OID.ocspNonce);
const BASIC_RESPONSE_TYPE = der.objectIdentifier(OID.ocspBasic);
const SUCCESSFUL = der.enumerated(OcspResponseStatus.successful);

/** Reads an OCSPRequest; throws MalformedOcspRequestError for anything that is not one. */
export function parseOcspRequest(bytes: Buffer): OcspRequest {
  try {
    const outer = readElement(bytes);
    if (outer.tag !== 0x30 || outer.end !== bytes.length) throw new Error('not one SEQUENCE');
    checkWellFormed(bytes, outer);
    const [tbsElement, signature, ...rest] = childrenOf(bytes, outer);
    if (tbsElement?.tag !== 0x30 || (signature && signature.tag !== 0xa0) || rest.length) throw new Error('not an OCSPRequest');
    // TBSRequest: [0] version, [1] requestorName, requestList, [2] requestExtensions.
    const tbs = childrenOf(bytes, tbsElement);
    const requestList = tbs.find((element) => element.tag === 0x30);
    if (!requestList || tbs.some((element) => ![0x30, 0xa0, 0xa1, 0xa2].includes(element.tag))) throw new Error('not a TBSRequest');
    const requests = childrenOf(bytes, requestList);
    if (requests.length === 0 || requests.length > MAX_CERT_IDS) throw new Error('request count');
    const certIds = requests.map((request) => {
      const [certId] = childrenOf(bytes, request);
      if (request.tag !== 0x30 || certId?.tag !== 0x30) throw new Error('not a Request');
      return readCertId(bytes, certId);
    });
    const extensions = tbs.find((element) => element.tag === 0xa2);
    return { certIds, nonce: extensions ? findNonce(bytes, extensions) : undefined };
  } catch (error) {
    throw new MalformedOcspRequestError('not an OCSP request', { cause: error });
  }
}

function readCertId(bytes: Buffer, certId: DerElement): OcspCertId {
  const parts = childrenOf(bytes, certId);
  const [algorithm, nameHash, keyHash, serial] = parts;
  if (parts.length !== 4 || algorithm!.tag !== 0x30 || nameHash!.tag !== 0x04 || keyHash!.tag !== 0x04 || serial!.tag !== 0x02) throw new Error('not a CertID');
  const [algorithmOid] = childrenOf(bytes, algorithm!);
  if (algorithmOid?.tag !== 0x06) throw new Error('bad hash AlgorithmIdentifier');
  const serialBytes = contentOf(bytes, serial!);
  if (serialBytes.length === 0) throw new Error('empty serial');
  return {
    der: bytesOf(bytes, certId),
    hashAlgorithm: decodeOid(contentOf(bytes, algorithmOid)),
    issuerNameHash: contentOf(bytes, nameHash!),
    issuerKeyHash: contentOf(bytes, keyHash!),
    serial: (serialBytes[0] === 0 && serialBytes.length > 1 ? serialBytes.subarray(1) : serialBytes).toString('hex'),
  };
}

function findNonce(bytes: Buffer, requestExtensions: DerElement): Buffer | undefined {
  const [list] = childrenOf(bytes, requestExtensions);
  if (list?.tag !== 0x30) throw new Error('bad requestExtensions');
  for (const extension of childrenOf(bytes, list)) {
    const parts = childrenOf(bytes, extension);
    const value = parts[parts.length - 1];
    if (extension.tag !== 0x30 || parts.length < 2 || parts[0]!.tag !== 0x06 || value!.tag !== 0x04) throw new Error('bad Extension');
    if (bytesOf(bytes, parts[0]!).equals(NONCE_EXTENSION_OID)) return contentOf(bytes, value!);
  }
  return undefined;
}

/** Status of one certificate. */
export type OcspStatus =
  | { readonly status: 'good' }
  | { readonly status: 'unknown' }
  | { readonly status: 'revoked'; readonly revokedAt: Date; readonly reason: string };

/** One answer of a response. */
export interface OcspSingleResponse {
  readonly certIdDer: Buffer;
  readonly status: OcspStatus;
}

/**
 * The issuing CA answering OCSP. Everything that is the same in every response (CertID
 * hashes of the issuer, the responder id, the certificate list) is computed once: a
 * response then costs one signature and a few small buffers.
 */
export class OcspResponder {
  /** hash OID -> [issuerNameHash, issuerKeyHash] under that hash. */
  private readonly issuerHashes = new Map<string, readonly [Buffer, Buffer]>();
  private readonly responderId: Buffer;
  private readonly certs: Buffer;
  private readonly signWith: { readonly key: KeyObject; readonly dsaEncoding: 'der' };
  // Answers signed within the same second share their times' encodings.
  private readonly producedAt = lastEncoding(der.generalizedTime);
  private readonly thisUpdate = lastEncoding(der.generalizedTime);
  private readonly nextUpdate = lastEncoding((date) => der.explicit(0, der.generalizedTime(date)));

  constructor(
    private readonly signer: SigningKey,
    issuer: { readonly subjectName: Buffer; readonly publicKeyBits: Buffer; readonly der: Buffer },
  ) {
    for (const [oid, hash] of Object.entries(HASHES)) {
      this.issuerHashes.set(oid, [createHash(hash).update(issuer.subjectName).digest(), createHash(hash).update(issuer.publicKeyBits).digest()]);
    }
    this.responderId = der.explicit(2, der.octetString(this.issuerHashes.get(OID.sha1)![1])); // byKey
    this.certs = der.explicit(0, der.sequence(issuer.der));
    this.signWith = { key: signer.privateKey, dsaEncoding: 'der' };
  }

  /** True when a CertID names this issuer (RFC 6960 4.1.1: hashes of its name and key). */
  issued(certId: OcspCertId): boolean {
    const hashes = this.issuerHashes.get(certId.hashAlgorithm);
    return !!hashes && hashes[0].equals(certId.issuerNameHash) && hashes[1].equals(certId.issuerKeyHash);
  }

  /** A signed successful OCSPResponse. */
  respond(answers: readonly OcspSingleResponse[], times: { producedAt: Date; thisUpdate: Date; nextUpdate: Date }, nonce: Buffer | undefined): Buffer {
    const thisUpdate = this.thisUpdate(times.thisUpdate);
    const nextUpdate = this.nextUpdate(times.nextUpdate);
    const singles = answers.map((answer) => der.sequence(answer.certIdDer, certStatus(answer.status), thisUpdate, nextUpdate));
    const responseData = nonce
      ? der.sequence(this.responderId, this.producedAt(times.producedAt), der.sequence(...singles), der.explicit(1, der.sequence(der.sequence(NONCE_EXTENSION_OID, der.octetString(nonce)))))
      : der.sequence(this.responderId, this.producedAt(times.producedAt), der.sequence(...singles));
    const signature = der.tlv(0x03, NO_UNUSED_BITS, sign(this.signer.digest, responseData, this.signWith));
    const algorithm = this.signer.algorithm;
    // BasicOCSPResponse's content, written once into the whole response behind the headers around it.
    const length = responseData.length + algorithm.length + signature.length + this.certs.length;
    const head = envelopeHead(length);
    return Buffer.concat([head, responseData, algorithm, signature, this.certs], head.length + length);
  }
}

/**
 * The bytes of an OCSPResponse before the content of its BasicOCSPResponse, which are the
 * same for every content of one length: OCSPResponse { successful, [0] ResponseBytes {
 * id-pkix-ocsp-basic, OCTET STRING { BasicOCSPResponse ... } } }. Kept per length, the
 * response is written in one piece instead of once per level around it (~2 us of a nonce
 * answer on Node 20); the lengths met are few (a signature's varies by a byte or two).
 */
const envelopeHeads = new Map<number, Buffer>();
const MAX_ENVELOPE_HEADS = 64;

function envelopeHead(contentLength: number): Buffer {
  let head = envelopeHeads.get(contentLength);
  if (head === undefined) {
    const whole = der.sequence(SUCCESSFUL, der.explicit(0, der.sequence(BASIC_RESPONSE_TYPE, der.octetString(der.sequence(Buffer.alloc(contentLength))))));
    // In an allocation of its own: a kept slice would hold the whole block it was cut from.
    head = Buffer.allocUnsafeSlow(whole.length - contentLength);
    whole.copy(head, 0, 0, head.length);
    if (envelopeHeads.size >= MAX_ENVELOPE_HEADS) envelopeHeads.clear();
    envelopeHeads.set(contentLength, head);
  }
  return head;
}

/** An encoder of times to the second that remembers its last answer. */
function lastEncoding(encode: (date: Date) => Buffer): (date: Date) => Buffer {
  let second = NaN;
  let encoded: Buffer | undefined;
  return (date) => {
    const at = Math.floor(date.getTime() / 1000);
    if (at !== second) {
      encoded = encode(date);
      second = at;
    }
    return encoded!;
  };
}

/** The leading byte of a BIT STRING whose bits fill its bytes (signatures). */
const NO_UNUSED_BITS = Buffer.from([0]);
const GOOD = der.implicitPrimitive(0, Buffer.alloc(0));
const UNKNOWN = der.implicitPrimitive(2, Buffer.alloc(0));

function certStatus(status: OcspStatus): Buffer {
  if (status.status === 'good') return GOOD;
  if (status.status === 'unknown') return UNKNOWN;
  const code = CRL_REASON_CODES[status.reason] ?? 0;
  return der.implicitConstructed(1, der.generalizedTime(status.revokedAt), der.explicit(0, der.enumerated(code)));
}

/** An OCSPResponse without responseBytes, for every status but successful. */
export const ocspErrorResponse = (status: number): Buffer => der.sequence(der.enumerated(status));
