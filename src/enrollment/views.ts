/** The JSON shapes of devices and certificates, shared by the admin API and the CLI's --json. */
import { toPem } from '../ca/pem.js';
import type { CertificateRecord, DeviceRecord } from './model.js';

/** A device as operators see it. */
export interface DeviceView {
  readonly id: string;
  readonly status: DeviceRecord['status'];
  readonly enrolledAt: string;
  readonly updatedAt: string;
  readonly currentSerial: string | null;
  readonly revokedAt: string | null;
  readonly revocationReason: string | null;
}

/** A certificate as operators see it (the PEM only when asked for one certificate). */
export interface CertificateView {
  readonly serial: string;
  readonly kind: CertificateRecord['kind'];
  readonly subject: string;
  readonly deviceId: string | null;
  readonly status: CertificateRecord['status'];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  readonly revokedAt: string | null;
  readonly revocationReason: string | null;
  readonly pem?: string;
}

export const deviceView = (device: DeviceRecord): DeviceView => ({
  id: device.id,
  status: device.status,
  enrolledAt: device.enrolledAt.toISOString(),
  updatedAt: device.updatedAt.toISOString(),
  currentSerial: device.currentSerial,
  revokedAt: device.revokedAt?.toISOString() ?? null,
  revocationReason: device.revocationReason,
});

export const certificateView = (certificate: CertificateRecord, withPem = false): CertificateView => ({
  serial: certificate.serial,
  kind: certificate.kind,
  subject: certificate.subject,
  deviceId: certificate.deviceId,
  status: certificate.status,
  notBefore: certificate.notBefore.toISOString(),
  notAfter: certificate.notAfter.toISOString(),
  issuedAt: certificate.issuedAt.toISOString(),
  revokedAt: certificate.revokedAt?.toISOString() ?? null,
  revocationReason: certificate.revocationReason,
  ...(withPem ? { pem: toPem(certificate.der) } : {}),
});
