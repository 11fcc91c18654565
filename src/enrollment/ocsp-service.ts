/**
 * The OCSP responder (RFC 6960): status straight from the store, so it agrees with the
 * CRL and with what the server enforces. Unreadable requests get malformedRequest.
 */
import {
  buildOcspResponse,
  certIdMatchesIssuer,
  MalformedOcspRequestError,
  OcspResponseStatus,
  ocspErrorResponse,
  parseOcspRequest,
  type OcspStatus,
} from '../ca/ocsp.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/** How long a relying party may cache an answer (nextUpdate - thisUpdate). */
const OCSP_VALIDITY_MS = 60 * 60_000;
/** Requests can only be so large: a CertID is ~80 bytes and we answer at most 16. */
export const MAX_OCSP_REQUEST_BYTES = 4096;

/** Answers OCSP requests for the issuing CA. */
export class OcspService {
  constructor(
    private readonly store: Store,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
  ) {}

  /** The DER OCSPResponse for a DER OCSPRequest, whatever the request holds. */
  async respond(requestDer: Buffer): Promise<Buffer> {
    let request;
    try {
      request = parseOcspRequest(requestDer);
    } catch (error) {
      if (error instanceof MalformedOcspRequestError) return ocspErrorResponse(OcspResponseStatus.malformedRequest);
      throw error;
    }
    const answers = [];
    for (const certId of request.certIds) answers.push({ certIdDer: certId.der, status: await this.status(certId) });
    const now = this.clock.now();
    return buildOcspResponse(
      this.ca.ocspResponder,
      answers,
      { producedAt: now, thisUpdate: now, nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_MS) },
      request.nonce,
    );
  }

  private async status(certId: Parameters<typeof certIdMatchesIssuer>[0]): Promise<OcspStatus> {
    if (!certIdMatchesIssuer(certId, this.ca.ocspResponder)) return { status: 'unknown' };
    const certificate = await this.store.findCertificate(certId.serial);
    if (!certificate) return { status: 'unknown' };
    if (certificate.status === 'revoked') {
      return { status: 'revoked', revokedAt: certificate.revokedAt!, reason: certificate.revocationReason ?? 'unspecified' };
    }
    return { status: 'good' };
  }
}
