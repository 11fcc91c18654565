/**
 * SQLite issuing to devices: a token's one enrollment and renewals, each run through the
 * group commit (they come in floods), which runs them without a savepoint each. So every
 * check here reads before anything is written: a refused enrollment or renewal returns its
 * conflict having written nothing, and the batch it was in commits without it.
 */
import type Database from 'better-sqlite3';
import type { CertificateRecord, Redemption, RedemptionConflict, Renewal, RenewalConflict } from '../../enrollment/model.js';
import type { GroupCommit } from '../group-commit.js';
import type { RedemptionStore } from '../store.js';
import type { SharedReads } from './reads.js';
import { certificateFromRow, date, deviceFromRow, type Row } from '../rows.js';
import type { Writer } from './writer.js';

/** Redeeming tokens and recording renewals. */
export class SqliteRedemption implements RedemptionStore {
  private readonly statements;
  private readonly redeem: (redemption: Redemption) => RedemptionConflict | undefined;
  private readonly renew: (renewal: Renewal) => RenewalConflict | undefined;

  constructor(
    db: Database.Database,
    private readonly groupCommit: GroupCommit,
    reads: SharedReads,
    writer: Writer,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      // An enrollment's statements bind by position, as the Writer's do (and for the same reason).
      redeemToken: s(`UPDATE tokens SET used_at = ?, used_by_device = ?, csr_sha256 = ?, serial = ?
                      WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`),
      // What redeemToken's condition asks, without the write: for a redemption refused anyway.
      tokenUsable: s('SELECT 1 FROM tokens WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?'),
      insertDevice: s(`INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
                       VALUES (?, 'active', ?, ?, ?, ?, ?)`),
      reactivateDevice: s(`UPDATE devices SET status = 'active', updated_at = @now, current_serial = @serial,
                           revoked_at = NULL, revocation_reason = NULL, retiring_serial = NULL, retire_at = NULL,
                           enrolled_via = @via, enrollment_label = @label WHERE id = @id`),
      setRenewedSerial: s(`UPDATE devices SET current_serial = @serial, updated_at = @now, retiring_serial = @retiring, retire_at = @retireAt
                           WHERE id = @id`),
      otherActiveDeviceCertificates: s(`SELECT serial FROM certificates WHERE device_id = @id AND status = 'active' AND serial <> @keep`),
      // An id bound to a token still waiting for its device is that device's: an unbound
      // token may not take it first.
      reservedId: s(`SELECT 1 FROM tokens WHERE device_id = ? AND used_at IS NULL AND revoked_at IS NULL
                       AND expires_at > ? LIMIT 1`),
      renewalCount: s(`SELECT count(*) AS count, min(issued_at) AS oldest FROM certificates
                       WHERE device_id = @id AND issued_at > @since AND token_id IS NULL`),
      // A key is never certified again once it was on another device or an operator, or
      // was marked by a keyCompromise revocation (this device's own included). Bound to
      // (key, key, device).
      keyTaken: s(`SELECT 1 FROM compromised_keys WHERE spki_sha256 = ?
                   UNION ALL
                   SELECT 1 FROM certificates WHERE spki_sha256 = ? AND (device_id IS NULL OR device_id <> ?) LIMIT 1`),
      renewalOf: s(`SELECT * FROM certificates WHERE renewed_from = ? AND csr_sha256 = ? ORDER BY issued_at DESC LIMIT 1`),
    };

    this.redeem = (r) => {
      const deviceId = r.certificate.deviceId;
      const now = r.now.getTime();
      const spki = r.certificate.spkiSha256;
      const serial = r.certificate.serial;
      const existing = reads.device.get(deviceId) as Row | undefined;
      const conflict: RedemptionConflict | undefined = this.statements.keyTaken.get(spki, spki, deviceId)
        ? 'key_reused'
        : (existing && r.mode !== 'reprovision') || (r.mode === 'unbound' && this.statements.reservedId.get(deviceId, now))
          ? 'device_exists'
          : undefined;
      // A token already taken outranks the rest: a retry that raced its own first attempt
      // must hear that (and so get that attempt's certificate back), not that its device exists.
      if (conflict) return this.statements.tokenUsable.get(r.tokenId, now) ? conflict : 'token_unavailable';
      if (this.statements.redeemToken.run(now, deviceId, r.csrSha256, serial, r.tokenId, now).changes !== 1) return 'token_unavailable';
      const via = r.via?.protocol ?? 'json';
      const label = r.via?.label ?? null;
      let audit = r.audit;
      if (existing) {
        const previous = deviceFromRow(existing);
        const { revoked } = writer.revokeAll(reads.activeDeviceCertificates, { id: deviceId, now }, r.supersede);
        this.statements.reactivateDevice.run({ id: deviceId, now, serial, via, label });
        audit = {
          ...audit,
          action: `${audit.action}.reprovision`,
          detail: { ...audit.detail, previousStatus: previous.status, previousReason: previous.revocationReason, superseded: revoked },
        };
      } else {
        this.statements.insertDevice.run(deviceId, now, now, serial, via, label);
      }
      writer.insertCertificate(r.certificate);
      writer.insertAudit(audit);
      return undefined;
    };

    this.renew = (r) => {
      const deviceId = r.certificate.deviceId;
      const now = r.now.getTime();
      const device = reads.device.get(deviceId) as Row | undefined;
      if (device?.status !== 'active') return { conflict: 'device_not_active' };
      // What authenticated the request may have been revoked or superseded since (a
      // re-provisioning, a retirement): only the current or the retiring certificate renews.
      const keep = r.presentedSerial;
      const presented = reads.certificateStatus.get(keep) as Row | undefined;
      if (presented?.status !== 'active' || (keep !== device.current_serial && keep !== device.retiring_serial)) {
        return { conflict: 'certificate_not_current' };
      }
      const earlier = r.certificate.csrSha256 === undefined ? undefined : (this.statements.renewalOf.get(keep, r.certificate.csrSha256) as Row | undefined);
      if (earlier) return { conflict: 'already_renewed', serial: earlier.serial as string };
      const spki = r.certificate.spkiSha256;
      if (this.statements.keyTaken.get(spki, spki, deviceId)) return { conflict: 'key_reused' };
      const since = r.limit.since.getTime();
      const recent = this.statements.renewalCount.get({ id: deviceId, since }) as { count: number; oldest: number | null };
      if (recent.count >= r.limit.max) return { conflict: 'renewal_limit', retryAt: new Date((recent.oldest ?? since) + (now - since)) };
      // The presented certificate stays until the new one is used (its deadline is not
      // pushed back by renewing again with it); any other is superseded now.
      const retireAt = device.retiring_serial === keep ? (device.retire_at as number) : r.retireAt.getTime();
      const { revoked } = writer.revokeAll(this.statements.otherActiveDeviceCertificates, { id: deviceId, now, keep }, r.supersede);
      this.statements.setRenewedSerial.run({ id: deviceId, now, serial: r.certificate.serial, retiring: keep, retireAt });
      writer.insertCertificate(r.certificate);
      writer.insertAudit({ ...r.audit, detail: { ...r.audit.detail, retiring: keep, retireAt: new Date(retireAt).toISOString(), superseded: revoked } });
      return undefined;
    };
  }

  async redeemTokenAndRecordCertificate(
    redemption: Redemption,
  ): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }> {
    const conflict = await this.groupCommit.run(() => this.redeem(redemption));
    return conflict ? { ok: false, conflict } : { ok: true };
  }

  async recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)> {
    const conflict = await this.groupCommit.run(() => this.renew(renewal));
    return conflict ? { ok: false, ...conflict } : { ok: true };
  }

  async findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined> {
    const row = this.statements.renewalOf.get(presentedSerial, csrSha256) as Row | undefined;
    return row && certificateFromRow(row);
  }

  async renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }> {
    const row = this.statements.renewalCount.get({ id: deviceId, since: since.getTime() }) as { count: number; oldest: number | null };
    return { count: row.count, oldest: date(row.oldest) };
  }
}
