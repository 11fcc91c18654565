/**
 * Who is on the other end of a mutual-TLS connection. The TLS layer has already checked
 * the chain against our issuing CA; this decides, from the store, whether that
 * certificate is one we issued and still honour.
 */
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import type { CertificateRecord, DeviceRecord, Store } from '../store/store.js';

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

/** Maps TLS client certificates to identities, refusing what we did not issue or revoked. */
export class ClientAuthenticator {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Authenticates an active device, or throws client_cert_* / device_revoked / forbidden. */
  async device(presented: PresentedCertificate): Promise<DeviceIdentity> {
    if (!presented.der || !presented.serial) {
      throw new ImprintError('client_cert_required', 'this route requires a client certificate');
    }
    if (presented.verificationError) {
      throw new ImprintError('client_cert_invalid', `client certificate refused: ${presented.verificationError}`);
    }
    const certificate = await this.store.findCertificate(presented.serial);
    if (!certificate || !certificate.der.equals(presented.der)) {
      throw new ImprintError('client_cert_invalid', 'client certificate was not issued by this server');
    }
    if (certificate.kind !== 'device' || !certificate.deviceId) {
      throw new ImprintError('forbidden', 'this route is for devices');
    }
    const device = await this.store.findDevice(certificate.deviceId);
    if (!device || device.status === 'revoked') {
      throw new ImprintError('device_revoked', `device ${certificate.deviceId} has been revoked`);
    }
    if (certificate.status !== 'active') {
      throw new ImprintError('client_cert_invalid', `client certificate has been revoked (${certificate.revocationReason ?? 'unspecified'})`);
    }
    const now = this.clock.now();
    if (certificate.notAfter <= now || certificate.notBefore > now) {
      throw new ImprintError('client_cert_invalid', 'client certificate is outside its validity period');
    }
    return { kind: 'device', deviceId: device.id, certificate, device };
  }
}
