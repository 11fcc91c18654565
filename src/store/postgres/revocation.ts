/** PostgreSQL revocation: devices, certificates, replaced certificates, and the sequence every instance follows. */
import type { AuditEventInput, CertificateRecord, DeviceRecord, RevocationReason, RevocationResult, RevokedEntry } from '../../enrollment/model.js';
import type { RevocationStore } from '../store.js';
import type { Postgres } from './connection.js';
import type { RevocationNotifications } from './notifications.js';
import { READS } from './reads.js';
import { certificateFromRow, deviceFromRow, text } from '../rows.js';
import type { Transaction } from './transaction.js';
import { currentSeq, markCompromised, revokeSelected, revokeSerials } from './writer.js';

const REVOKE_DEVICE = `UPDATE devices SET status = 'revoked', updated_at = $2, revoked_at = $2, revocation_reason = $3,
                         retiring_serial = NULL, retire_at = NULL
                       WHERE id = $1 AND status = 'active'`;
const CLEAR_RETIRING = 'UPDATE devices SET retiring_serial = NULL, retire_at = NULL WHERE id = ANY($1::text[])';
/** In deadline order, as SQLite reads them from devices_retire_at. */
const OVERDUE = 'SELECT id, retiring_serial FROM devices WHERE retire_at <= $1 ORDER BY retire_at, pos';
const REVOKED_SINCE = 'SELECT serial FROM certificates WHERE revocation_seq > $1 ORDER BY revocation_seq, pos';
/** Revoked certificates read per statement for a CRL: a page's rows are gone before the next is read. */
const REVOKED_PAGE = 10_000;
/** A page of them after the last one's (sequence, serial). */
const LIST_REVOKED = `SELECT revocation_seq, serial, revoked_at, revocation_reason, not_after FROM certificates
                      WHERE (revocation_seq, serial) > ($1, $2) AND revocation_seq <= $3 AND not_after > $4
                      ORDER BY revocation_seq, serial LIMIT ${REVOKED_PAGE}`;
/** ($1 serial) Active certificates with its key (a renewal may keep its key): a compromised key authenticates nothing. */
const ACTIVE_WITH_KEY_OF = `SELECT serial FROM certificates WHERE spki_sha256 = (SELECT spki_sha256 FROM certificates WHERE serial = $1)
                              AND status = 'active' ORDER BY issued_at, pos`;
const COUNT_REVOKED = `SELECT count(*) AS n FROM certificates WHERE status = 'revoked' AND not_after > $1`;

/** A row of LIST_REVOKED (BIGINT columns read as numbers). */
interface RevokedRow {
  readonly revocation_seq: number;
  readonly serial: string;
  readonly revoked_at: number;
  readonly revocation_reason: string | null;
  readonly not_after: number;
}

/** A device whose renewal replaced a certificate that still waits to retire. */
interface Retiring {
  readonly id: string;
  readonly retiring_serial: string;
}

/** Revokes the replaced certificates of these devices, one audit event each. */
async function retire(tx: Transaction, devices: readonly Retiring[], reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
  const result = await revokeSerials(
    tx,
    devices.map((device) => device.retiring_serial),
    audit.at.getTime(),
    reason,
  );
  await tx.changes(CLEAR_RETIRING, [devices.map((device) => device.id)]);
  for (const device of devices) {
    if (result.revoked.includes(device.retiring_serial)) {
      tx.appendAudit({ ...audit, deviceId: device.id, serial: device.retiring_serial, detail: { ...audit.detail, reason } });
    }
  }
  return result;
}

/** Revoking, and following what was revoked. */
export class PostgresRevocation implements RevocationStore {
  constructor(
    private readonly db: Postgres,
    private readonly notifications: RevocationNotifications,
  ) {}

  async revokeDevice(
    id: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { device: DeviceRecord }) | undefined> {
    return this.db.write(async (tx) => {
      const now = audit.at.getTime();
      if ((await tx.rows(READS.device, [id])).length === 0) return undefined;
      const result = await revokeSelected(tx, READS.activeDeviceCertificates, [id], now, reason);
      const changed = (await tx.changes(REVOKE_DEVICE, [id, now, reason])) === 1;
      const keysMarked = reason === 'keyCompromise' ? await markCompromised(tx, { deviceId: id }, now) : 0;
      if (changed || result.revoked.length || keysMarked) {
        tx.appendAudit({ ...audit, deviceId: id, detail: { ...audit.detail, reason, serials: result.revoked, ...(keysMarked ? { keysMarked } : {}) } });
      }
      const [row] = await tx.rows(READS.device, [id]);
      return { ...result, device: deviceFromRow(row!) };
    });
  }

  async revokeCertificate(
    serial: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined> {
    return this.db.write(async (tx) => {
      const [row] = await tx.rows(READS.certificate, [serial]);
      if (!row) return undefined;
      const compromised = reason === 'keyCompromise';
      // Already revoked for another reason: its entry stays, its key is marked all the same.
      const result = compromised
        ? await revokeSelected(tx, ACTIVE_WITH_KEY_OF, [serial], audit.at.getTime(), reason)
        : await revokeSerials(tx, row.status === 'active' ? [serial] : [], audit.at.getTime(), reason);
      const keysMarked = compromised ? await markCompromised(tx, { serial }, audit.at.getTime()) : 0;
      if (result.revoked.length || keysMarked) {
        const detail = { ...audit.detail, reason, ...(result.revoked.some((each) => each !== serial) ? { serials: result.revoked } : {}), ...(keysMarked ? { keysMarked } : {}) };
        tx.appendAudit({ ...audit, serial, deviceId: text(row.device_id) ?? undefined, detail });
      }
      const [after] = await tx.rows(READS.certificate, [serial]);
      return { ...result, certificate: certificateFromRow(after!) };
    });
  }

  async retireReplaced(deviceId: string, serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    return this.db.write(async (tx) => {
      const [device] = await tx.rows(READS.device, [deviceId]);
      const retiring = text(device?.retiring_serial);
      if (!device || !retiring || device.current_serial !== serial) return { revoked: [], seq: await currentSeq(tx) };
      return retire(tx, [{ id: deviceId, retiring_serial: retiring }], reason, audit);
    });
  }

  async retireOverdue(reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    const params = [audit.at.getTime()];
    // One indexed read when nothing is due, which is nearly always: no writer lock for it.
    if ((await this.db.rows(OVERDUE, params)).length === 0) return { revoked: [], seq: await currentSeq(this.db) };
    return this.db.write(async (tx) => retire(tx, await tx.rows<Retiring>(OVERDUE, params), reason, audit));
  }

  onRevocation(listener: () => void): () => void {
    return this.notifications.subscribe(listener);
  }

  async revocationSeq(): Promise<number> {
    return currentSeq(this.db);
  }

  async revokedSince(seq: number): Promise<string[]> {
    return (await this.db.rows<{ serial: string }>(REVOKED_SINCE, [seq])).map((row) => row.serial);
  }

  async *listRevoked(now: Date, afterSeq: number, upToSeq: number): AsyncGenerator<readonly RevokedEntry[]> {
    // Before the first revocation after afterSeq: no serial is empty.
    let [lastSeq, lastSerial] = [afterSeq + 1, ''];
    for (;;) {
      const rows = await this.db.rows<RevokedRow>(LIST_REVOKED, [lastSeq, lastSerial, upToSeq, now.getTime()]);
      if (rows.length === 0) return;
      yield rows.map((row) => ({
        serial: row.serial,
        revokedAt: row.revoked_at,
        reason: (row.revocation_reason ?? 'unspecified') as RevocationReason,
        notAfter: row.not_after,
      }));
      if (rows.length < REVOKED_PAGE) return;
      ({ revocation_seq: lastSeq, serial: lastSerial } = rows.at(-1)!);
    }
  }

  async countRevoked(now: Date): Promise<number> {
    const [row] = await this.db.rows<{ n: number }>(COUNT_REVOKED, [now.getTime()]);
    return row!.n;
  }
}
