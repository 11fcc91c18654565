/** The reads more than one role makes, inside its transactions or not. */
import type Database from 'better-sqlite3';

/** Prepares the shared reads, once per connection. */
export function prepareSharedReads(db: Database.Database) {
  const s = (sql: string) => db.prepare(sql);
  return {
    device: s('SELECT * FROM devices WHERE id = ?'),
    certificate: s('SELECT * FROM certificates WHERE serial = ?'),
    certificateStatus: s('SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = ?'),
    // Expired certificates too: one may still renew (--renew-after-expiry), and a device
    // revocation revokes every certificate it holds. The CRL lists only unexpired entries,
    // so this costs it nothing.
    activeDeviceCertificates: s(`SELECT serial FROM certificates WHERE device_id = @id AND status = 'active'`),
  };
}

/** The shared reads of one connection. */
export type SharedReads = ReturnType<typeof prepareSharedReads>;
