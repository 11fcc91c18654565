/**
 * Enrollment and renewal: the policy between a device's request and the CA. The pipeline
 * is fixed: cheap token checks -> CSR rules -> identity rules -> sign -> one transaction
 * that redeems the token and records device and certificate. No certificate leaves
 * unless that transaction committed.
 */
import { hash } from 'node:crypto';
import type { CertificateAuthority, IssuedCertificate } from '../ca/authority.js';
import { decodeCsrText, parseCsr, type ParsedCsr } from '../ca/csr.js';
import { toPem } from '../ca/pem.js';
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { AuditEventInput, CertificateRecord, Redemption, TokenRecord } from './model.js';
import type { AuditStore, InventoryStore, RedemptionStore, TokenStore } from '../store/store.js';
import type { DeviceIdentity } from './client-authenticator.js';
import { checkCsr } from './csr-policy.js';
import type { DeviceIdPolicy } from './device-id.js';
import { hashToken, isWellFormedToken } from './tokens.js';
import { TurnBatch } from './turn-batch.js';

/** What a device receives: the contract's enroll/renew response body. */
export interface EnrollmentResult {
  readonly deviceId: string;
  readonly serial: string;
  readonly certificate: string;
  readonly chain: string[];
  readonly notAfter: string;
}

/** `created` is false when a retry was answered with the certificate already issued. */
export interface EnrollmentOutcome {
  readonly created: boolean;
  /** The token redeemed (its id, never the token). */
  readonly tokenId: string;
  readonly result: EnrollmentResult;
}

/** Settings that shape device certificates' lifetime. */
export interface EnrollmentSettings {
  readonly deviceValidityDays: number;
}

/** How renewal treats the certificate it replaces, and how often a device may renew. */
export interface RenewalPolicy {
  /** How long the replaced certificate keeps working when the new one is not used. */
  readonly overlapMs: number;
  /** Renewals per device in any 24 hours. */
  readonly perDay: number;
  /** How long after expiry a certificate may still renew itself; 0: never. */
  readonly afterExpiryMs: number;
}

/** DESIGN: 24 h overlap, 10 renewals a day, no renewal after expiry. */
export const DEFAULT_RENEWAL_POLICY: RenewalPolicy = { overlapMs: 86_400_000, perDay: 10, afterExpiryMs: 0 };

const DAY_MS = 86_400_000;

/** Backdating absorbs device clocks that run a little slow (DESIGN). */
const BACKDATE_MS = 5 * 60_000;

const secondsPrecision = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/** SHA-256 of a CSR's DER, or undefined when the text is no CSR at all. */
function csrSha256(text: string): string | undefined {
  try {
    return hash('sha256', decodeCsrText(text));
  } catch {
    return undefined;
  }
}

/** A key seen on another device, an operator, or a certificate revoked for keyCompromise. */
const keyReused = () =>
  new ImprintError('key_reused', 'this public key may not be certified: it belongs to another device or operator, or was reported compromised');

/** Throws when an unused token can no longer be redeemed. */
function refuseUnusableToken(token: TokenRecord, now: Date): void {
  if (token.revokedAt) throw new ImprintError('token_revoked', 'token has been revoked');
  if (token.expiresAt <= now) throw new ImprintError('token_expired', 'token has expired');
}

/** Enrolls devices with bootstrap tokens and renews them over mTLS. */
export class EnrollmentService {
  private readonly cpuWork = new TurnBatch();

  constructor(
    private readonly store: TokenStore & RedemptionStore & InventoryStore & AuditStore,
    private readonly ca: CertificateAuthority,
    private readonly clock: Clock,
    private readonly deviceIds: DeviceIdPolicy,
    private readonly settings: EnrollmentSettings,
    private readonly renewal: RenewalPolicy = DEFAULT_RENEWAL_POLICY,
  ) {}

  /**
   * POST /v1/enroll (and EST simpleenroll, SCEP PKCSReq): one token, one CSR, one device
   * certificate. `via` names the protocol (and EST label) recorded with the device.
   */
  async enroll(request: {
    token: string | undefined;
    csr: string;
    source?: string | undefined;
    via?: Redemption['via'];
  }): Promise<EnrollmentOutcome> {
    const now = this.clock.now();
    let audit: AuditEventInput = {
      at: now,
      actor: 'anonymous',
      action: 'enroll',
      outcome: 'ok',
      source: request.source,
      ...(request.via ? { detail: { protocol: request.via.protocol, ...(request.via.label ? { label: request.via.label } : {}) } } : {}),
    };
    try {
      if (!request.token) throw new ImprintError('token_missing', 'Authorization: Bearer <token> is required');
      if (!isWellFormedToken(request.token)) throw new ImprintError('token_invalid', 'token is not valid');
      const token = await this.store.findTokenByHash(hashToken(request.token));
      if (!token) throw new ImprintError('token_invalid', 'token is not valid');
      audit = { ...audit, actor: `token:${token.id}`, tokenId: token.id };
      // An EST path label names the token's batch (a factory line): it is recorded with the
      // device, so it must be the token's own, not a label the client picked.
      if (request.via?.label !== undefined && token.label !== request.via.label) {
        throw new ImprintError('not_found', 'this token belongs to no such EST label');
      }

      if (token.usedAt) return await this.replay(token, request.csr, audit);
      refuseUnusableToken(token, now);

      // The CSR's rules, then signing, with the other enrollments of this turn (see TurnBatch).
      const { csr, deviceId, issued } = await this.cpuWork.run(() => {
        const csr = parseCsr(request.csr);
        const deviceId = checkCsr(csr, this.deviceIds);
        audit = { ...audit, deviceId };
        if (token.deviceId !== null && deviceId !== token.deviceId) {
          throw new ImprintError('csr_subject_mismatch', `this token enrolls only device ${token.deviceId}`);
        }
        // Device existence and key reuse are checked once, by the transaction that records.
        return { csr, deviceId, issued: this.issue(csr, deviceId, now) };
      });
      const outcome = await this.store.redeemTokenAndRecordCertificate({
        tokenId: token.id,
        now,
        csrSha256: csr.sha256,
        mode: token.deviceId === null ? 'unbound' : token.mayReprovision ? 'reprovision' : 'create',
        supersede: 'superseded',
        certificate: this.newCertificate(issued, csr, deviceId, now, token.id),
        audit: { ...audit, serial: issued.serial },
        via: request.via,
      });
      if (outcome.ok) return { created: true, tokenId: token.id, result: this.result(deviceId, issued.pem, issued.serial, issued.notAfter) };

      if (outcome.conflict === 'device_exists') {
        await this.refuseExistingDevice(deviceId);
        throw new ImprintError('device_exists', `device id ${deviceId} is reserved for a token bound to it`);
      }
      if (outcome.conflict === 'key_reused') throw keyReused();
      // Lost a race for the token with a concurrent request: answer as if we had arrived second.
      const current = await this.store.findTokenByHash(hashToken(request.token));
      if (current?.usedAt) return await this.replay(current, request.csr, audit);
      refuseUnusableToken(current ?? token, this.clock.now());
      throw new ImprintError('token_used', 'token is no longer usable');
    } catch (error) {
      if (error instanceof ImprintError) {
        await this.store.appendAudit({ ...audit, outcome: error.code });
        error.about({ tokenId: audit.tokenId, deviceId: audit.deviceId });
      }
      throw error;
    }
  }

  /**
   * POST /v1/renew: a new certificate (a new key is allowed) for an authenticated device.
   * The certificate it authenticated with is retired once the new one is used or the
   * overlap ends; any other is superseded at once, so a device holds at most two.
   */
  async renew(identity: DeviceIdentity, request: { csr: string; source?: string | undefined }): Promise<EnrollmentResult> {
    const now = this.clock.now();
    const audit: AuditEventInput = {
      at: now,
      actor: `device:${identity.deviceId}`,
      action: 'renew',
      outcome: 'ok',
      source: request.source,
      deviceId: identity.deviceId,
    };
    try {
      const csr = parseCsr(request.csr);
      const deviceId = checkCsr(csr, this.deviceIds);
      if (deviceId !== identity.deviceId) {
        throw new ImprintError('csr_subject_mismatch', `a renewal CSR must name ${identity.deviceId}`);
      }
      // The same renewal again (its answer was lost, or a SCEP message was replayed) gets
      // the certificate it already produced, not another one superseding it.
      const earlier = await this.store.findRenewal(identity.certificate.serial, csr.sha256);
      if (earlier) return await this.retried(earlier, audit);
      // Cheap refusal before signing; the transaction guarantees it under concurrency.
      const since = new Date(now.getTime() - DAY_MS);
      const recent = await this.store.renewalCount(deviceId, since);
      if (recent.count >= this.renewal.perDay) throw this.renewalLimited(deviceId, now, new Date((recent.oldest ?? since).getTime() + DAY_MS));
      const issued = this.issue(csr, deviceId, now);
      const outcome = await this.store.recordRenewal({
        now,
        presentedSerial: identity.certificate.serial,
        retireAt: new Date(now.getTime() + this.renewal.overlapMs),
        limit: { max: this.renewal.perDay, since },
        supersede: 'superseded',
        certificate: { ...this.newCertificate(issued, csr, deviceId, now, null), renewedFrom: identity.certificate.serial, csrSha256: csr.sha256 },
        audit: { ...audit, serial: issued.serial },
      });
      if (outcome.ok) return this.result(deviceId, issued.pem, issued.serial, issued.notAfter);
      if (outcome.conflict === 'already_renewed') {
        const certificate = await this.store.findCertificate(outcome.serial);
        if (certificate) return await this.retried(certificate, audit);
      }
      if (outcome.conflict === 'key_reused') throw keyReused();
      if (outcome.conflict === 'renewal_limit') throw this.renewalLimited(deviceId, now, outcome.retryAt);
      if (outcome.conflict === 'certificate_not_current') {
        throw new ImprintError('client_cert_invalid', 'client certificate has been revoked or replaced');
      }
      throw new ImprintError('device_revoked', `device ${deviceId} has been revoked`);
    } catch (error) {
      if (error instanceof ImprintError) {
        await this.store.appendAudit({ ...audit, outcome: error.code });
        error.about({ tokenId: audit.tokenId, deviceId: audit.deviceId });
      }
      throw error;
    }
  }

  /**
   * A used token presented again: the same CSR gets the same certificate back (the
   * device lost our first answer); anything else is token_used.
   */
  private async replay(token: TokenRecord, csrText: string, audit: AuditEventInput): Promise<EnrollmentOutcome> {
    const sameCsr = token.csrSha256 !== null && token.csrSha256 === csrSha256(csrText);
    const certificate = sameCsr && token.serial ? await this.store.findCertificate(token.serial) : undefined;
    if (!certificate || !certificate.deviceId) throw new ImprintError('token_used', 'token has already been used');
    const device = await this.store.findDevice(certificate.deviceId);
    if (device?.status === 'revoked') throw new ImprintError('device_revoked', `device ${device.id} has been revoked`);
    if (certificate.status !== 'active') throw new ImprintError('token_used', 'token has already been used');
    await this.store.appendAudit({ ...audit, action: 'enroll.retry', deviceId: certificate.deviceId, serial: certificate.serial });
    return {
      created: false,
      tokenId: token.id,
      result: this.result(certificate.deviceId, toPem(certificate.der), certificate.serial, certificate.notAfter),
    };
  }

  /**
   * Answers a renewal sent again with the certificate it produced the first time, while
   * that one stands; once it was replaced, the old request produces nothing more.
   */
  private async retried(certificate: CertificateRecord, audit: AuditEventInput): Promise<EnrollmentResult> {
    if (certificate.status !== 'active') {
      throw new ImprintError('bad_request', 'this renewal was answered before and its certificate has been replaced since; send a new CSR');
    }
    await this.store.appendAudit({ ...audit, action: 'renew.retry', serial: certificate.serial });
    return this.result(certificate.deviceId ?? certificate.subject, toPem(certificate.der), certificate.serial, certificate.notAfter);
  }

  private renewalLimited(deviceId: string, now: Date, retryAt: Date): ImprintError {
    return new ImprintError('rate_limited', `device ${deviceId} renewed ${this.renewal.perDay} times in the last 24 hours`, {
      retryAfterSeconds: Math.max(1, Math.ceil((retryAt.getTime() - now.getTime()) / 1000)),
    });
  }

  private async refuseExistingDevice(deviceId: string): Promise<void> {
    const existing = await this.store.findDevice(deviceId);
    if (existing?.status === 'revoked') {
      throw new ImprintError('device_revoked', `device ${deviceId} has been revoked; re-provision it with a token bound to its id`);
    }
    if (existing) throw new ImprintError('device_exists', `device ${deviceId} is already enrolled`);
  }

  private issue(csr: ParsedCsr, deviceId: string, now: Date): IssuedCertificate {
    const notBefore = secondsPrecision(now.getTime() - BACKDATE_MS);
    return this.ca.issueClientCertificate({
      kind: 'device',
      name: deviceId,
      keyType: csr.key.type,
      subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
      subjectPublicKeyBits: csr.subjectPublicKeyBits,
      notBefore,
      notAfter: secondsPrecision(notBefore.getTime() + this.settings.deviceValidityDays * 86_400_000),
    });
  }

  private newCertificate(issued: IssuedCertificate, csr: ParsedCsr, deviceId: string, now: Date, tokenId: string | null) {
    return {
      serial: issued.serial,
      kind: 'device' as const,
      subject: deviceId,
      deviceId,
      spkiSha256: csr.spkiSha256,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      issuedAt: now,
      tokenId,
      der: issued.der,
    };
  }

  private result(deviceId: string, pem: string, serial: string, notAfter: Date): EnrollmentResult {
    return { deviceId, serial, certificate: pem, chain: [...this.ca.chainPem], notAfter: notAfter.toISOString() };
  }
}
