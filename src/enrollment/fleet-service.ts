/** The fleet as operators see it: devices and certificates, listed, searched, revoked. */
import type { Clock } from '../clock.js';
import { ImprintError } from '../errors.js';
import { certificateKeyType } from '../ca/certificate-info.js';
import { REVOCATION_REASONS, type CertificateRecord, type DeviceRecord, type DeviceSort, type FleetCounts, type Page, type RevocationReason } from './model.js';
import type { InventoryStore, RevocationStore } from '../store/store.js';
import type { Actor } from './actor.js';
import { checkLimit, listPage } from './paging.js';
import { certificateView, deviceView, type CertificateView, type DeviceView } from './views.js';

/** A device with its certificate history, newest last. */
export interface DeviceDetail extends DeviceView {
  readonly certificates: CertificateView[];
}

/** A device after a revocation, with the serials this revocation revoked (none when it was already revoked). */
export interface DeviceRevocation extends DeviceDetail {
  readonly revokedSerials: readonly string[];
}

const MAX_HISTORY = 1000;

/** A device in a fleet listing, with when its current certificate expires. */
export interface DeviceListingView extends DeviceView {
  readonly currentNotAfter: string | null;
}

/** A certificate with what identifies its key. */
export interface CertificateDetail extends CertificateView {
  /** SHA-256 of the SubjectPublicKeyInfo, lowercase hex: the key's fingerprint. */
  readonly spkiSha256: string;
  /** "EC P-256", "RSA 2048", ... */
  readonly keyType: string;
  /** Issued for a bootstrap token (an enrollment) or for the device's previous certificate (a renewal). */
  readonly issuedFor: 'enrollment' | 'renewal';
}

/** A device with its certificate history (newest last, with key details) and how it enrolled. */
export interface DeviceInspection extends DeviceView {
  readonly enrolledVia: DeviceRecord['enrolledVia'];
  readonly enrollmentLabel: string | null;
  readonly certificates: CertificateDetail[];
}

/** The fleet at a glance; `expiringSoon` counts active device certificates expiring within `windowDays`. */
export interface FleetCountsView extends FleetCounts {
  readonly windowDays: number;
}

/** The expiry window of the fleet counts. */
export const EXPIRING_WINDOW_DAYS = 30;

/** Checks a reason name from a request; undefined means unspecified. */
export function revocationReason(reason: string | undefined): RevocationReason {
  if (reason === undefined) return 'unspecified';
  if (!(REVOCATION_REASONS as readonly string[]).includes(reason)) {
    throw new ImprintError('bad_request', `reason must be one of ${REVOCATION_REASONS.join(', ')}`);
  }
  return reason as RevocationReason;
}

/**
 * Serial numbers as the API takes them (hex, any case, optional colons, as openssl prints
 * them) in the stored form: whole bytes of the positive integer, no 00 sign byte.
 */
export function normaliseSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,42}$/.test(hex)) throw new ImprintError('bad_request', 'serial must be hexadecimal');
  return (hex.length % 2 ? `0${hex}` : hex).replace(/^(00)+(?=..)/, '');
}

/** Lists, shows and revokes devices and certificates. */
export class FleetService {
  constructor(
    private readonly store: InventoryStore & RevocationStore,
    private readonly clock: Clock,
  ) {}

  async listDevices(query: { status?: DeviceRecord['status']; q?: string; limit?: number; cursor?: string }): Promise<Page<DeviceView>> {
    const page = await listPage(this.store.listDevices({ ...query, limit: checkLimit(query.limit) }));
    return { items: page.items.map(deviceView), nextCursor: page.nextCursor };
  }

  async getDevice(id: string): Promise<DeviceDetail> {
    const device = await this.store.findDevice(id);
    if (!device) throw new ImprintError('not_found', `no device ${id}`);
    const history = await this.store.listCertificates({ deviceId: id, limit: MAX_HISTORY });
    return { ...deviceView(device), certificates: history.items.map((c) => certificateView(c)) };
  }

  async listCertificates(query: {
    deviceId?: string;
    kind?: CertificateRecord['kind'];
    status?: CertificateRecord['status'];
    limit?: number;
    cursor?: string;
  }): Promise<Page<CertificateView>> {
    const page = await listPage(this.store.listCertificates({ ...query, limit: checkLimit(query.limit) }));
    return { items: page.items.map((c) => certificateView(c)), nextCursor: page.nextCursor };
  }

  async getCertificate(serial: string): Promise<CertificateView> {
    const certificate = await this.store.findCertificate(normaliseSerial(serial));
    if (!certificate) throw new ImprintError('not_found', `no certificate with serial ${serial}`);
    return certificateView(certificate, true);
  }

  /** Devices newest enrollment first or soonest expiry first, searched and filtered, a page at a time. */
  async browseDevices(query: {
    sort?: DeviceSort | undefined;
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  }): Promise<Page<DeviceListingView>> {
    const page = await listPage(this.store.browseDevices({ ...query, sort: query.sort ?? 'enrolled', limit: checkLimit(query.limit) }));
    return {
      items: page.items.map((device) => ({ ...deviceView(device), currentNotAfter: device.currentNotAfter?.toISOString() ?? null })),
      nextCursor: page.nextCursor,
    };
  }

  /** Active and revoked devices, and active device certificates expiring within EXPIRING_WINDOW_DAYS. */
  async counts(): Promise<FleetCountsView> {
    const now = this.clock.now();
    const soon = new Date(now.getTime() + EXPIRING_WINDOW_DAYS * 86_400_000);
    return { ...(await this.store.countFleet(now, soon)), windowDays: EXPIRING_WINDOW_DAYS };
  }

  /** A device with its certificate history, each certificate with its key type and fingerprint. */
  async inspectDevice(id: string): Promise<DeviceInspection> {
    const device = await this.store.findDevice(id);
    if (!device) throw new ImprintError('not_found', `no device ${id}`);
    const history = await this.store.listCertificates({ deviceId: id, limit: MAX_HISTORY });
    return {
      ...deviceView(device),
      enrolledVia: device.enrolledVia,
      enrollmentLabel: device.enrollmentLabel,
      certificates: history.items.map((c) => ({ ...certificateView(c), spkiSha256: c.spkiSha256, keyType: certificateKeyType(c.der), issuedFor: c.tokenId ? 'enrollment' : 'renewal' })),
    };
  }

  /** Revokes a device and every unexpired certificate it holds. */
  async revokeDevice(id: string, reason: string | undefined, by: Actor): Promise<DeviceRevocation> {
    const checked = revocationReason(reason);
    const result = await this.store.revokeDevice(id, checked, {
      at: this.clock.now(),
      actor: by.actor,
      action: 'devices.revoke',
      outcome: 'ok',
      source: by.source,
    });
    if (!result) throw new ImprintError('not_found', `no device ${id}`);
    return { ...(await this.getDevice(id)), revokedSerials: result.revoked };
  }

  /** Revokes one certificate by serial; the device itself stays active. */
  async revokeCertificate(serial: string, reason: string | undefined, by: Actor): Promise<CertificateView> {
    const checked = revocationReason(reason);
    const result = await this.store.revokeCertificate(normaliseSerial(serial), checked, {
      at: this.clock.now(),
      actor: by.actor,
      action: 'certificates.revoke',
      outcome: 'ok',
      source: by.source,
    });
    if (!result) throw new ImprintError('not_found', `no certificate with serial ${serial}`);
    return certificateView(result.certificate);
  }
}
