/**
 * SQLite revocation: devices and certificates revoked, replaced certificates retired, and
 * the revocation sequence and revoked list every process follows.
 */
import type Database from 'better-sqlite3';
import type { AuditEventInput, CertificateRecord, DeviceRecord, RevocationReason, RevocationResult, RevokedEntry } from '../../enrollment/model.js';
import type { RevocationStore } from '../store.js';
import type { SharedReads } from './reads.js';
import { certificateFromRow, deviceFromRow, text, type Row } from '../rows.js';
import { UntilCommit } from './until-commit.js';
import type { Writer } from './writer.js';

/**
 * Revoked certificates read per statement, for a CRL and for the serials revoked since a
 * sequence: no statement makes more than a page of JavaScript values at once. A CRL's page
 * is gone before the next is read, and a page of 1,000 (~250 KB of rows and entries) dies
 * young even in a worker's 4 MB semi-space; pages of 10,000 outlived it and a first CRL of a
 * million spent ~0.8 s more in the garbage collector.
 */
const REVOKED_PAGE = 1_000;

/** Revoking and following what was revoked. */
export class SqliteRevocation implements RevocationStore {
  private readonly statements;
  /** Read on every OCSP answer: kept until the next commit of any process. */
  private readonly seq: UntilCommit<number>;

  constructor(
    private readonly db: Database.Database,
    private readonly reads: SharedReads,
    private readonly writer: Writer,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      clearRetiring: s('UPDATE devices SET retiring_serial = NULL, retire_at = NULL WHERE id = ?'),
      overdueRetirements: s('SELECT id, retiring_serial FROM devices WHERE retire_at <= ?'),
      revokeDevice: s(`UPDATE devices SET status = 'revoked', updated_at = @now, revoked_at = @now, revocation_reason = @reason,
                         retiring_serial = NULL, retire_at = NULL
                       WHERE id = @id AND status = 'active'`),
      // A page at a time after the last one's (sequence, serial), like listRevoked: a mass revocation's
      // million serials from one statement were a million V8 handles in one native call, which every
      // scavenge during it walked (1.4 s of CPU per process on Node 20, 2.0 s and 200 MB more on Node 24).
      // The serial alone per row, and the page's last sequence looked up by its serial: a value less
      // per row is 0.7 -> 0.37 s for a million on Node 20.
      revokedSince: s(`SELECT serial FROM certificates WHERE (revocation_seq, serial) > (?, ?) AND revocation_seq IS NOT NULL
                       ORDER BY revocation_seq, serial LIMIT ${REVOKED_PAGE}`).pluck(),
      revocationSeqOf: s('SELECT revocation_seq FROM certificates WHERE serial = ?').pluck(),
      // Other certificates with the same key (a renewal may keep its key): a compromised key
      // authenticates nothing.
      activeWithKeyOf: s(`SELECT serial FROM certificates WHERE spki_sha256 = (SELECT spki_sha256 FROM certificates WHERE serial = @serial)
                           AND status = 'active'`),
      // Raw rows, a page at a time after the last one's (sequence, serial): the first CRL build reads every revoked certificate.
      listRevoked: s(`SELECT revocation_seq, serial, revoked_at, revocation_reason, not_after FROM certificates
                      WHERE (revocation_seq, serial) > (?, ?) AND revocation_seq <= ? AND not_after > ?
                      ORDER BY revocation_seq, serial LIMIT ${REVOKED_PAGE}`).raw(),
    };
    this.seq = new UntilCommit(db, () => writer.currentSeq());
  }

  async revokeDevice(id: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { device: DeviceRecord }) | undefined> {
    return this.db.transaction(() => {
      const now = audit.at.getTime();
      if (!this.reads.device.get(id)) return undefined;
      const result = this.writer.revokeAll(this.reads.activeDeviceCertificates, { id, now }, reason);
      const changed = this.statements.revokeDevice.run({ id, now, reason }).changes === 1;
      const keysMarked = reason === 'keyCompromise' ? this.writer.markCompromised({ deviceId: id }, now) : 0;
      if (changed || result.revoked.length || keysMarked) {
        this.writer.insertAudit({ ...audit, deviceId: id, detail: { ...audit.detail, reason, serials: result.revoked, ...(keysMarked ? { keysMarked } : {}) } });
      }
      return { ...result, device: deviceFromRow(this.reads.device.get(id) as Row) };
    }).immediate();
  }

  async revokeCertificate(serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined> {
    return this.db.transaction(() => {
      const row = this.reads.certificate.get(serial) as Row | undefined;
      if (!row) return undefined;
      const now = audit.at.getTime();
      const compromised = reason === 'keyCompromise';
      // Already revoked for another reason: its entry stays, its key is marked all the same.
      const result = compromised
        ? this.writer.revokeAll(this.statements.activeWithKeyOf, { serial, now }, reason)
        : this.writer.revokeSerials(row.status === 'active' ? [serial] : [], now, reason);
      const keysMarked = compromised ? this.writer.markCompromised({ serial }, now) : 0;
      if (result.revoked.length || keysMarked) {
        const detail = { ...audit.detail, reason, ...(result.revoked.some((each) => each !== serial) ? { serials: result.revoked } : {}), ...(keysMarked ? { keysMarked } : {}) };
        this.writer.insertAudit({ ...audit, serial, deviceId: text(row.device_id) ?? undefined, detail });
      }
      return { ...result, certificate: certificateFromRow(this.reads.certificate.get(serial) as Row) };
    }).immediate();
  }

  async retireReplaced(deviceId: string, serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    return this.db.transaction(() => {
      const device = this.reads.device.get(deviceId) as Row | undefined;
      const retiring = text(device?.retiring_serial);
      if (!device || !retiring || device.current_serial !== serial) return { revoked: [], seq: this.writer.currentSeq() };
      return retire(this.writer, this.statements.clearRetiring, [{ id: deviceId, retiring_serial: retiring }], reason, audit);
    }).immediate();
  }

  async retireOverdue(reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    const select = () => this.statements.overdueRetirements.all(audit.at.getTime()) as { id: string; retiring_serial: string }[];
    // One indexed read when nothing is due, which is nearly always: no write lock for it.
    if (select().length === 0) return { revoked: [], seq: this.writer.currentSeq() };
    return this.db.transaction(() => retire(this.writer, this.statements.clearRetiring, select(), reason, audit)).immediate();
  }

  onRevocation(listener: () => void): () => void {
    return this.writer.revocations.subscribe(listener);
  }

  async revocationSeq(): Promise<number> {
    return this.seq.get();
  }

  async revokedSince(seq: number): Promise<string[]> {
    const serials: string[] = [];
    // Before the first revocation after seq: no serial is empty. A revocation committed between
    // two pages may be listed too: it is after seq all the same.
    let [lastSeq, lastSerial] = [seq + 1, ''];
    for (;;) {
      const page = this.statements.revokedSince.all(lastSeq, lastSerial) as string[];
      for (const serial of page) serials.push(serial);
      if (page.length < REVOKED_PAGE) return serials;
      lastSerial = page.at(-1)!;
      // A certificate's revocation sequence never changes once set.
      lastSeq = this.statements.revocationSeqOf.get(lastSerial) as number;
    }
  }

  async *listRevoked(now: Date, afterSeq: number, upToSeq: number): AsyncGenerator<readonly RevokedEntry[]> {
    // Before the first revocation after afterSeq: no serial is empty.
    let [lastSeq, lastSerial] = [afterSeq + 1, ''];
    for (;;) {
      const rows = this.statements.listRevoked.all(lastSeq, lastSerial, upToSeq, now.getTime()) as [number, string, number, string | null, number][];
      if (rows.length === 0) return;
      // By index, not destructured: a million rows destructure ~0.2 s slower.
      yield rows.map((row) => ({ serial: row[1], revokedAt: row[2], reason: (row[3] ?? 'unspecified') as RevocationReason, notAfter: row[4] }));
      if (rows.length < REVOKED_PAGE) return;
      [lastSeq, lastSerial] = rows.at(-1)!;
    }
  }

  /** The console's statement, prepared on first use. */
  private revokedCount: Database.Statement | undefined;

  async countRevoked(now: Date): Promise<number> {
    this.revokedCount ??= this.db.prepare(`SELECT count(*) AS n FROM certificates WHERE status = 'revoked' AND not_after > ?`);
    return (this.revokedCount.get(now.getTime()) as { n: number }).n;
  }
}

/** Revokes the replaced certificates of these devices, one audit event each. */
function retire(
  writer: Writer,
  clearRetiring: Database.Statement,
  devices: readonly { id: string; retiring_serial: string }[],
  reason: RevocationReason,
  audit: AuditEventInput,
): RevocationResult {
  const result = writer.revokeSerials(
    devices.map((device) => device.retiring_serial),
    audit.at.getTime(),
    reason,
  );
  for (const device of devices) {
    clearRetiring.run(device.id);
    if (result.revoked.includes(device.retiring_serial)) {
      writer.insertAudit({ ...audit, deviceId: device.id, serial: device.retiring_serial, detail: { ...audit.detail, reason } });
    }
  }
  return result;
}
