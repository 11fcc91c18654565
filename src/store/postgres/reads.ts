/** The reads more than one role makes, inside its transactions or not. */
import { CERTIFICATE_COLUMNS, DEVICE_COLUMNS } from './columns.js';

/** The statements, each with its parameters in order. */
export const READS = {
  /** ($1 id) */
  device: `SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = $1`,
  /** ($1 serial) */
  certificate: `SELECT ${CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1`,
  /** ($1 serial) */
  certificateStatus: 'SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = $1',
  /**
   * ($1 device id) Expired certificates too: one may still renew (--renew-after-expiry), and
   * a device revocation revokes every certificate it holds. The CRL lists only unexpired
   * entries, so this costs it nothing. In issuing order, as SQLite reads them.
   */
  activeDeviceCertificates: `SELECT serial FROM certificates WHERE device_id = $1 AND status = 'active' ORDER BY issued_at, pos`,
} as const;
