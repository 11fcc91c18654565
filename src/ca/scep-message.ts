/**
 * What a SCEP (RFC 8894) message is, for the code that handles one without reading or
 * building it (the SCEP service and routes): scep.ts reads and builds messages with pkijs
 * and asn1js, which a serving process loads only once a SCEP message comes.
 */
import type { KeyObject } from 'node:crypto';

/** messageType values (RFC 8894 3.2.1.2). */
export const MessageType = { CertRep: '3', RenewalReq: '17', PKCSReq: '19', CertPoll: '20', GetCert: '21', GetCRL: '22' } as const;

/** failInfo values (RFC 8894 3.2.1.4). */
export type FailInfo = 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId';

/** A SCEP message the RA could not read; answered with a failure CertRep when possible. */
export class ScepMessageError extends Error {
  constructor(
    readonly failInfo: FailInfo,
    message: string,
    /** What of the request was read before it failed, to address the failure CertRep. */
    readonly partial?: { transactionId?: string | undefined; senderNonce?: Buffer | undefined; signerCertificate?: Buffer | undefined; messageType?: string | undefined },
  ) {
    super(message);
    this.name = 'ScepMessageError';
  }
}

/** A verified, decrypted client request. */
export interface ScepRequest {
  readonly messageType: string;
  readonly transactionId: string;
  readonly senderNonce: Buffer;
  /** The certificate that signed the request: self-signed for PKCSReq, the current one for RenewalReq. */
  readonly signerCertificate: Buffer;
  /** Its RSA public key, checked: the CertRep is encrypted to it. */
  readonly signerKey: KeyObject;
  /** The PKCS#10 request from the envelope. */
  readonly csrDer: Buffer;
  readonly challengePassword: string | undefined;
}
