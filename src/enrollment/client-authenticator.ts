/**
 * Who is on the other end of a mutual-TLS connection. The TLS layer has already checked
 * the chain against our issuing CA; this decides, from the store, whether that
 * certificate is one we issued and still honour.
 */
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import { DeviceIdentityCache } from './identity-cache.js';
import type { CertificateRecord, DeviceRecord, OperatorRole } from './model.js';
import type { InventoryStore, OperatorStore, RevocationStore } from '../store/store.js';

/** What the TLS layer saw of the client's certificate. */
export interface PresentedCertificate {
  /** DER of the leaf, or undefined when the client sent none. */
  readonly der: Buffer | undefined;
  /** Lowercase hex serial of the leaf. */
  readonly serial: string | undefined;
  /** The chain verification error, or undefined when the chain verified. */
  readonly verificationError: string | undefined;
}

/** An authenticated device. */
export interface DeviceIdentity {
  readonly kind: 'device';
  readonly deviceId: string;
  readonly certificate: CertificateRecord;
  readonly device: DeviceRecord;
}

/** Human sentences for the chain errors OpenSSL reports most often. */
const VERIFICATION_ERRORS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'client certificate has expired',
  CERT_NOT_YET_VALID: 'client certificate is not yet valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'client certificate is self-signed, not issued by this server',
  SELF_SIGNED_CERT_IN_CHAIN: 'client certificate was not issued by this server',
  UNABLE_TO_GET_ISSUER_CERT: 'client certificate was not issued by this server',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'client certificate was not issued by this server',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'client certificate was not issued by this server',
  CERT_SIGNATURE_FAILURE: 'client certificate signature does not verify',
  INVALID_PURPOSE: 'client certificate is not valid for client authentication',
};

/** An authenticated operator. */
export interface OperatorIdentity {
  readonly kind: 'operator';
  readonly name: string;
  readonly role: OperatorRole;
  readonly certificate: CertificateRecord;
}

/** Maps TLS client certificates to identities, refusing what we did not issue or revoked. */
export class ClientAuthenticator {
  /**
   * Devices already authenticated, while the revocation sequence stands (identity-cache.ts).
   * Operators are always read afresh: a role can change without a revocation.
   */
  readonly devices = new DeviceIdentityCache<DeviceIdentity>();

  /**
   * @param renewAfterExpiryMs how long after expiry a device certificate may still
   *   authenticate a renewal (0: never).
   */
  constructor(
    private readonly store: InventoryStore & RevocationStore & OperatorStore,
    private readonly clock: Clock,
    private readonly renewAfterExpiryMs = 0,
  ) {}

  /**
   * Authenticates an active device, or throws client_cert_* / device_revoked / forbidden.
   * `renewing`: the request renews, so a certificate expired within the configured window
   * is accepted. The first request made with a renewed certificate retires the one it
   * replaced.
   */
  async device(presented: PresentedCertificate, options: { readonly renewing?: boolean } = {}): Promise<DeviceIdentity> {
    const graceMs = options.renewing ? this.renewAfterExpiryMs : 0;
    // The chain is only refused for its age here: the stored copy must still match byte
    // for byte, so this accepts nothing we did not issue, and TLS proved the key.
    const expiredOk = graceMs > 0 && presented.verificationError === 'CERT_HAS_EXPIRED';
    const checked = expiredOk ? { ...presented, verificationError: undefined } : presented;
    // A renewal reads the store: its policy looks at the device's current certificates.
    const known = options.renewing ? undefined : this.knownDevice(checked);
    if (known) return known;
    const ticket = this.devices.ticket();
    const certificate = await this.certificate(checked);
    if (certificate.kind !== 'device' || !certificate.deviceId) throw new ImprintError('forbidden', 'this route is for devices');
    const device = await this.store.findDevice(certificate.deviceId);
    if (!device || device.status === 'revoked') {
      throw new ImprintError('device_revoked', `device ${certificate.deviceId} has been revoked`);
    }
    this.checkCurrent(certificate, graceMs);
    const now = this.clock.now();
    if (device.retiringSerial === certificate.serial && device.retireAt && device.retireAt <= now) {
      throw new ImprintError('client_cert_invalid', 'client certificate has been replaced by a renewal (superseded)');
    }
    if (device.retiringSerial && device.currentSerial === certificate.serial) {
      await this.store.retireReplaced(device.id, certificate.serial, 'superseded', {
        at: now,
        actor: `device:${device.id}`,
        action: 'certificates.retire',
        outcome: 'ok',
        detail: { replacedBy: certificate.serial },
      });
    }
    const identity: DeviceIdentity = { kind: 'device', deviceId: device.id, certificate, device };
    this.devices.set(ticket, identity);
    return identity;
  }

  /**
   * The active device of a chain-verified certificate this process already authenticated
   * (identity-cache.ts), checked as `device` checks it, without a promise; undefined when
   * only the store can tell. Throws client_cert_invalid for a certificate out of its validity.
   */
  knownDevice(presented: PresentedCertificate): DeviceIdentity | undefined {
    if (!presented.der || !presented.serial || presented.verificationError) return undefined;
    const known = this.devices.get(presented.serial, presented.der);
    if (known) this.checkCurrent(known.certificate);
    return known;
  }

  /** Authenticates an active operator holding one of the given roles. */
  async operator(presented: PresentedCertificate, roles: readonly OperatorRole[]): Promise<OperatorIdentity> {
    const certificate = await this.certificate(presented);
    if (certificate.kind !== 'operator') throw new ImprintError('forbidden', 'this route is for operators');
    const operator = await this.store.findOperator(certificate.subject);
    if (!operator || operator.status !== 'active') throw new ImprintError('client_cert_invalid', 'this operator has been revoked');
    this.checkCurrent(certificate);
    if (!roles.includes(operator.role)) throw new ImprintError('forbidden', `the ${operator.role} role may not do this`);
    return { kind: 'operator', name: operator.name, role: operator.role, certificate };
  }

  /** The stored record of a chain-verified client certificate. */
  private async certificate(presented: PresentedCertificate): Promise<CertificateRecord> {
    if (!presented.der || !presented.serial) {
      throw new ImprintError('client_cert_required', 'this route requires a client certificate');
    }
    if (presented.verificationError) {
      const sentence = VERIFICATION_ERRORS[presented.verificationError] ?? 'client certificate chain does not verify';
      throw new ImprintError('client_cert_invalid', `${sentence} (${presented.verificationError})`);
    }
    const certificate = await this.store.findCertificate(presented.serial);
    if (!certificate || !certificate.der.equals(presented.der)) {
      throw new ImprintError('client_cert_invalid', 'client certificate was not issued by this server');
    }
    return certificate;
  }

  /** Refuses a revoked certificate, or one outside its validity (plus `graceMs` after it) by our clock. */
  private checkCurrent(certificate: CertificateRecord, graceMs = 0): void {
    if (certificate.status !== 'active') {
      throw new ImprintError('client_cert_invalid', `client certificate has been revoked (${certificate.revocationReason ?? 'unspecified'})`);
    }
    const now = this.clock.now();
    if (certificate.notAfter.getTime() + graceMs <= now.getTime() || certificate.notBefore > now) {
      throw new ImprintError('client_cert_invalid', 'client certificate is outside its validity period');
    }
  }
}
