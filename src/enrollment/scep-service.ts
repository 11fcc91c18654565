/**
 * SCEP (RFC 8894) policy: a PKCSReq is an enrollment whose bootstrap token is the CSR's
 * challengePassword, a RenewalReq a renewal authenticated by the certificate that signed
 * it. Both go through the same EnrollmentService as /v1/enroll and /v1/renew, so one-time
 * use, retries, key and identity rules are the same; this file only translates between
 * SCEP messages and those calls, and our error codes into CertRep failInfo.
 */
import { randomBytes } from 'node:crypto';
import type { CertificateAuthority } from '../ca/authority.js';
import type { ScepRaIdentity } from '../ca/ca-directory.js';
import { certsOnlyCms } from '../ca/cms.js';
import { certificatesFromPem } from '../ca/pem.js';
import { MessageType, ScepMessageError, type FailInfo, type ScepRequest } from '../ca/scep-message.js';
import type { ClaimedCertificate } from '../ca/scep.js';
import { ImprintError, type ErrorCode } from '../errors.js';
import type { ClientAuthenticator } from './client-authenticator.js';
import type { EnrollmentService } from './enrollment-service.js';

/** The operation a SCEP message asks for: PKCSReq enrolls, RenewalReq renews. */
export type ScepOperation = 'enroll' | 'renew';

/** What a SCEP answer was about, for the operator's log line: never the token itself. */
export interface ScepSubject {
  readonly deviceId?: string | undefined;
  readonly serial?: string | undefined;
  readonly tokenId?: string | undefined;
}

/**
 * What a PKIOperation is answered with: a CertRep (refusals too go out as 200 FAILURE
 * CertReps), and for the HTTP layer's log line and metrics what the message asked for,
 * the refusal it carries and what it concerned.
 */
export interface ScepAnswer {
  readonly certRep: Buffer;
  /** The operation asked for; undefined when the message names none we read. */
  readonly operation: ScepOperation | undefined;
  /** Our error code behind a FAILURE CertRep (for rate limits and logs); undefined on success. */
  readonly refusal: ErrorCode | undefined;
  /**
   * A RenewalReq signed by a certificate our issuing CA signed (revoked, superseded or
   * current): the refusal then concerns that device, not whoever sent the message.
   */
  readonly signedByOurs: boolean;
  readonly subject: ScepSubject;
}

/** The SCEP message code (src/ca/scep.ts), with pkijs and asn1js under it. */
type ScepCodec = typeof import('../ca/scep.js');

const operationOf = (messageType: string | undefined): ScepOperation | undefined =>
  messageType === MessageType.PKCSReq ? 'enroll' : messageType === MessageType.RenewalReq ? 'renew' : undefined;

/**
 * failInfo for our refusals (RFC 8894 3.2.1.4). badCertId: the certificate that signed a
 * renewal is not one we honour; badMessageCheck: a signature that does not verify;
 * badRequest: everything policy refuses (tokens, CSR rules, identity, rate).
 */
const FAIL_INFO: Partial<Record<ErrorCode, FailInfo>> = {
  csr_signature_invalid: 'badMessageCheck',
  client_cert_required: 'badCertId',
  client_cert_invalid: 'badCertId',
  device_revoked: 'badCertId',
};

/** The SCEP registration authority's policy over the enrollment service. */
export class ScepService {
  /** Keys the RSA implicit rejection of this process (see rsaKeyTransportDecrypt). */
  private readonly secret = randomBytes(32);
  private loaded: ScepRaIdentity | undefined;
  private caCerts: Buffer | undefined;
  /**
   * Loaded on the first PKIOperation (requests that come meanwhile wait for the same load):
   * pkijs and asn1js hold 3-6 MiB of each serving process (measured, Node 20 and 24),
   * which a fleet that never speaks SCEP need not pay.
   */
  private codec: Promise<ScepCodec> | undefined;

  /**
   * @param loadRa reads ca/scep-ra.pem|key (issued at start-up); called on first use.
   * @param loadCodec imports the message code (src/ca/scep.ts).
   */
  constructor(
    private readonly ca: CertificateAuthority,
    private readonly enrollment: EnrollmentService,
    private readonly clients: ClientAuthenticator,
    private readonly loadRa: () => ScepRaIdentity,
    private readonly loadCodec: () => Promise<ScepCodec> = () => import('../ca/scep.js'),
  ) {}

  /** The RA certificate and key. */
  get ra(): ScepRaIdentity {
    this.loaded ??= this.loadRa();
    return this.loaded;
  }

  /**
   * The message code, loaded once. A load that fails (no file descriptor left, the file
   * replaced by an upgrade) is not kept: this request is answered 503 and the next tries again.
   */
  private scepCodec(): Promise<ScepCodec> {
    this.codec ??= this.loadCodec().catch(() => {
      this.codec = undefined;
      throw new ImprintError('service_unavailable', 'SCEP is not available at the moment; retry in a few seconds', { retryAfterSeconds: 5 });
    });
    return this.codec;
  }

  /**
   * GetCACert (RFC 8894 4.2.1.2): the RA certificate, then the issuing CA and the root, as
   * a degenerate certs-only PKCS#7. The RA comes first: it is the one clients encrypt to.
   */
  caCertificates(): Buffer {
    this.caCerts ??= certsOnlyCms([this.ra.certificate, this.ca.material.issuer.der, this.ca.material.root.der]);
    return this.caCerts;
  }

  /**
   * A PKIOperation: reads the message, enrolls or renews, answers a CertRep. Throws
   * ScepMessageError only for a message too broken to address a CertRep to (no
   * transactionID or senderNonce): the caller answers that 400.
   */
  async pkiOperation(message: Buffer, source: string | undefined): Promise<ScepAnswer> {
    const ra = this.ra;
    const { buildCertRep, checkIssuedBy, readPkiMessage, signerHoldsCsrKey } = await this.scepCodec();
    let request: ScepRequest;
    try {
      request = await readPkiMessage(message, { certificate: ra.certificate, key: ra.key, secret: this.secret });
    } catch (error) {
      // Hostile bytes may trip the CMS reader anywhere: whatever it throws is a bad message.
      if (!(error instanceof ScepMessageError)) throw new ScepMessageError('badRequest', 'the message cannot be read');
      const partial = error.partial;
      if (!partial?.transactionId || !partial.senderNonce) throw error;
      const addressed = { transactionId: partial.transactionId, senderNonce: partial.senderNonce, signerCertificate: undefined };
      const certRep = buildCertRep(addressed, { status: 'failure', failInfo: error.failInfo }, ra);
      return { certRep, operation: operationOf(partial.messageType), refusal: 'bad_request', signedByOurs: false, subject: {} };
    }
    const operation = operationOf(request.messageType);
    // RFC 8894 2.3 asks only that the self-signed certificate of a PKCSReq SHOULD hold the
    // CSR's key. We require it: the CertRep is encrypted to that certificate, and only a
    // signer holding the CSR's key binds the message (and the reply) to the key certified.
    if (operation === 'enroll' && !signerHoldsCsrKey(request)) {
      const certRep = buildCertRep(request, { status: 'failure', failInfo: 'badMessageCheck' }, ra);
      return { certRep, operation, refusal: 'bad_request', signedByOurs: false, subject: {} };
    }
    // RFC 8894 3.3.1.2: a RenewalReq is signed with the current certificate, which must chain
    // to our issuing CA (what TLS checks for /v1/renew) before it is looked up.
    const claimed = request.messageType === MessageType.RenewalReq ? checkIssuedBy(request.signerCertificate, this.ca.material.issuer) : undefined;
    const signedByOurs = claimed !== undefined && claimed.verificationError === undefined;
    try {
      const issued = await this.issue(request, source, claimed);
      const [certificate] = certificatesFromPem(issued.pem);
      return { certRep: buildCertRep(request, { status: 'success', certificate: certificate! }, ra), operation, refusal: undefined, signedByOurs, subject: issued.subject };
    } catch (error) {
      if (!(error instanceof ImprintError)) throw error;
      const failInfo = FAIL_INFO[error.code] ?? 'badRequest';
      return { certRep: buildCertRep(request, { status: 'failure', failInfo }, ra), operation, refusal: error.code, signedByOurs, subject: { ...error.subject } };
    }
  }

  /** Enrolls (PKCSReq) or renews (RenewalReq): the issued certificate's PEM and what it concerned. */
  private async issue(request: ScepRequest, source: string | undefined, claimed: ClaimedCertificate | undefined): Promise<{ pem: string; subject: ScepSubject }> {
    const csr = request.csrDer.toString('base64');
    if (request.messageType === MessageType.PKCSReq) {
      // RFC 8894 2.3: the challengePassword authorizes the request; here it is the token.
      const outcome = await this.enrollment.enroll({ token: request.challengePassword, csr, source, via: { protocol: 'scep' } });
      const { deviceId, serial } = outcome.result;
      return { pem: outcome.result.certificate, subject: { deviceId, serial, tokenId: outcome.tokenId } };
    }
    if (claimed !== undefined) {
      // A RenewalReq: its signer must then be the very certificate we recorded.
      const identity = await this.clients.device(
        { der: request.signerCertificate, serial: claimed.serial || undefined, verificationError: claimed.verificationError },
        { renewing: true },
      );
      const result = await this.enrollment.renew(identity, { csr, source });
      return { pem: result.certificate, subject: { deviceId: identity.deviceId, serial: result.serial } };
    }
    throw new ImprintError('bad_request', `SCEP messageType ${request.messageType} is not supported`);
  }
}
