/**
 * PostgreSQL issuing to devices: a token's one enrollment and renewals, each one write
 * run through the group commit (they come in floods); a batch's enrollments that create
 * their device go in one call of imprint_enroll_batch (migrations/postgres/0006). Each
 * runs under the writer lock (locks.ts), so its checks see every other instance's
 * committed writes and nobody else's can slip in before it commits: that decides who
 * redeems a token, and the key and device-id checks hold across instances.
 */
import type { CertificateRecord, Redemption, RedemptionConflict, Renewal, RenewalConflict } from '../../enrollment/model.js';
import type { RedemptionStore } from '../store.js';
import type { Postgres } from './connection.js';
import type { Bulk, GroupCommit } from './group-commit.js';
import { READS } from './reads.js';
import { CERTIFICATE_COLUMNS } from './columns.js';
import { certificateFromRow, date, deviceFromRow } from '../rows.js';
import { auditColumns, type Outcome, type Transaction } from './transaction.js';
import type { Queryable } from './query.js';
import { auditText } from '../audit-hash.js';
import { LOCK, LOCK_NAMESPACE } from './locks.js';
import { insertCertificate, revokeSelected } from './writer.js';

const INSERT_DEVICE = `INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
                       VALUES ($1, 'active', $2, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`;
const REACTIVATE_DEVICE = `UPDATE devices SET status = 'active', updated_at = $2, current_serial = $3,
                             revoked_at = NULL, revocation_reason = NULL, retiring_serial = NULL, retire_at = NULL,
                             enrolled_via = $4, enrollment_label = $5 WHERE id = $1`;
const SET_RENEWED_SERIAL = 'UPDATE devices SET current_serial = $2, updated_at = $3, retiring_serial = $4, retire_at = $5 WHERE id = $1';
const OTHER_ACTIVE_DEVICE_CERTIFICATES = `SELECT serial FROM certificates WHERE device_id = $1 AND status = 'active' AND serial <> $2
                                          ORDER BY issued_at, pos`;
/**
 * Whether the key with SHA-256 `spki` is taken for `deviceId` (both placeholders): a key is
 * never certified again once it was on another device or an operator, or was marked by a
 * keyCompromise revocation (this device's own included).
 */
const keyTaken = (spki: string, deviceId: string): string => `(EXISTS (SELECT 1 FROM compromised_keys WHERE spki_sha256 = ${spki})
  OR EXISTS (SELECT 1 FROM certificates WHERE spki_sha256 = ${spki} AND (device_id IS NULL OR device_id <> ${deviceId})))`;
/** How many renewals of `deviceId` were issued after `since` (placeholders), and the oldest's time. */
const renewalsSince = (deviceId: string, since: string): string => `SELECT count(*) AS count, min(issued_at) AS oldest FROM certificates
  WHERE device_id = ${deviceId} AND issued_at > ${since} AND token_id IS NULL`;
/**
 * Redeems the token and makes a redemption's checks, in one round trip. The conditional
 * UPDATE decides who redeems a token: it waits for the row lock of any concurrent
 * redemption and re-checks its conditions once that one committed, so exactly one wins.
 * The checks read the state before the UPDATE. An id bound to a token still waiting for
 * its device is that device's: an unbound token may not take it first.
 */
const REDEEM = `WITH redeemed AS (
                  UPDATE tokens SET used_at = $2, used_by_device = $3, csr_sha256 = $4, serial = $5
                  WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 RETURNING 1)
                SELECT EXISTS (SELECT 1 FROM redeemed) AS redeemed, ${keyTaken('$6', '$3')} AS key_taken,
                  $7::boolean AND EXISTS (SELECT 1 FROM tokens WHERE device_id = $3 AND used_at IS NULL AND revoked_at IS NULL
                                            AND expires_at > $2) AS reserved`;
/**
 * A renewal's checks in one round trip: the device, the certificate it presented, the
 * renewal this one repeats, whether the key is taken, and the renewals in the limit's window.
 */
const RENEWAL_CHECKS = `SELECT d.status, d.current_serial, d.retiring_serial, d.retire_at,
                          (SELECT status FROM certificates WHERE serial = $2) AS presented_status,
                          (SELECT serial FROM certificates WHERE renewed_from = $2 AND csr_sha256 = $3
                             ORDER BY issued_at DESC LIMIT 1) AS earlier,
                          ${keyTaken('$4', '$1')} AS key_taken, recent.count AS recent, recent.oldest
                        FROM devices d, (${renewalsSince('$1', '$5')}) recent
                        WHERE d.id = $1`;
/**
 * Redeems a batch of tokens and audits them, chaining the events after the head given, or
 * when none is, taking the writer lock and chaining after the last event:
 * migrations/postgres/0006_enroll_batch_alone.sql.
 */
const REDEEM_BATCH = `SELECT outcomes, last_hash FROM imprint_enroll_batch(${LOCK_NAMESPACE}, ${LOCK.writer}, $1::text, $2::json, $3::json)`;
const RENEWAL_OF = `SELECT ${CERTIFICATE_COLUMNS} FROM certificates WHERE renewed_from = $1 AND csr_sha256 = $2 ORDER BY issued_at DESC LIMIT 1`;

/** Thrown inside a write to roll back what it already wrote and report a conflict. */
class Abort extends Error {
  constructor(readonly conflict: RedemptionConflict) {
    super(conflict);
  }
}

/** Redeems the token and records the device and its certificate; a conflict writes nothing. */
async function redeem(tx: Transaction, r: Redemption): Promise<RedemptionConflict | undefined> {
  const deviceId = r.certificate.deviceId;
  const now = r.now.getTime();
  const [claim] = await tx.rows<{ redeemed: boolean; key_taken: boolean; reserved: boolean }>(REDEEM, [
    r.tokenId,
    now,
    deviceId,
    r.csrSha256,
    r.certificate.serial,
    r.certificate.spkiSha256,
    r.mode === 'unbound',
  ]);
  if (!claim!.redeemed) return 'token_unavailable';
  if (claim!.key_taken) throw new Abort('key_reused');
  if (claim!.reserved) throw new Abort('device_exists');
  const via = [r.via?.protocol ?? 'json', r.via?.label ?? null];
  const inserted = await tx.changes(INSERT_DEVICE, [deviceId, now, r.certificate.serial, ...via]);
  let audit = r.audit;
  if (inserted !== 1) {
    if (r.mode !== 'reprovision') throw new Abort('device_exists');
    const [row] = await tx.rows(READS.device, [deviceId]);
    const previous = deviceFromRow(row!);
    const { revoked } = await revokeSelected(tx, READS.activeDeviceCertificates, [deviceId], now, r.supersede);
    await tx.changes(REACTIVATE_DEVICE, [deviceId, now, r.certificate.serial, ...via]);
    audit = {
      ...audit,
      action: `${audit.action}.reprovision`,
      detail: { ...audit.detail, previousStatus: previous.status, previousReason: previous.revocationReason, superseded: revoked },
    };
  }
  await insertCertificate(tx, r.certificate);
  tx.appendAudit(audit);
  return undefined;
}

/** A redemption as imprint_enroll_batch takes it, with the text its audit event's hash covers (the event's columns go apart). */
function batchItem(r: Redemption): Record<string, unknown> {
  const c = r.certificate;
  return {
    token_id: r.tokenId,
    now: r.now.getTime(),
    csr_sha256: r.csrSha256,
    unbound: r.mode === 'unbound',
    via: r.via?.protocol ?? 'json',
    label: r.via?.label ?? null,
    serial: c.serial,
    kind: c.kind,
    subject: c.subject,
    device_id: c.deviceId,
    spki_sha256: c.spkiSha256,
    not_before: c.notBefore.getTime(),
    not_after: c.notAfter.getTime(),
    issued_at: c.issuedAt.getTime(),
    cert_token_id: c.tokenId,
    der: c.der.toString('base64'),
    renewed_from: c.renewedFrom ?? null,
    cert_csr_sha256: c.csrSha256 ?? null,
    audit: auditText(r.audit),
  };
}

type BatchResult = { outcomes: (RedemptionConflict | null)[] | null; last_hash: string | null };

/** One call of imprint_enroll_batch: after `head`, or under the lock it takes when null. */
async function callBatch(db: Queryable, head: string | null, redemptions: readonly Redemption[]): Promise<BatchResult> {
  const items = JSON.stringify(redemptions.map(batchItem));
  const events = JSON.stringify(redemptions.map((r) => auditColumns(r.audit)));
  const [called] = await db.rows<BatchResult>(REDEEM_BATCH, [head, items, events]);
  return called!;
}

const redeemed = (outcomes: readonly (RedemptionConflict | null)[]): Outcome<RedemptionConflict | undefined>[] =>
  outcomes.map((conflict) => ({ ok: true, value: conflict ?? undefined }));

/**
 * A batch's enrollments that create their device (not re-provisionings), with their audit
 * events, in one call. Alone, that call is the whole transaction. When a statement fails
 * (not a conflict: a serial already taken), the call wrote nothing: in a transaction each
 * then redeems alone, so that only the one at fault fails.
 */
const redeemBatch: Bulk<Redemption, RedemptionConflict | undefined> = {
  async alone(db, redemptions) {
    const { outcomes } = await callBatch(db, null, redemptions);
    return outcomes ? redeemed(outcomes) : undefined;
  },
  async inTransaction(tx, redemptions) {
    // The events appended before go first, as they would have without the batch.
    await tx.insertAppended();
    const { outcomes, last_hash } = await callBatch(tx, tx.chainHead, redemptions);
    if (outcomes === null) {
      const each: Outcome<RedemptionConflict | undefined>[] = [];
      for (const r of redemptions) each.push(await tx.attempt((t) => redeem(t, r)));
      return each;
    }
    tx.chainedTo(last_hash!);
    return redeemed(outcomes);
  },
};

/** Records a renewal: the new certificate becomes current, the presented one retires. */
async function renew(tx: Transaction, r: Renewal): Promise<RenewalConflict | undefined> {
  const deviceId = r.certificate.deviceId;
  const now = r.now.getTime();
  const since = r.limit.since.getTime();
  const [device] = await tx.rows(RENEWAL_CHECKS, [deviceId, r.presentedSerial, r.certificate.csrSha256 ?? null, r.certificate.spkiSha256, since]);
  // The checks in SQLite's order: the first that fails answers.
  if (device?.status !== 'active') return { conflict: 'device_not_active' };
  // What authenticated the request may have been revoked or superseded since (a
  // re-provisioning, a retirement): only the current or the retiring certificate renews.
  const keep = r.presentedSerial;
  if (device.presented_status !== 'active' || (keep !== device.current_serial && keep !== device.retiring_serial)) {
    return { conflict: 'certificate_not_current' };
  }
  if (device.earlier) return { conflict: 'already_renewed', serial: device.earlier as string };
  if (device.key_taken) return { conflict: 'key_reused' };
  const recent = device.recent as number;
  if (recent >= r.limit.max) return { conflict: 'renewal_limit', retryAt: new Date(((device.oldest as number | null) ?? since) + (now - since)) };
  // The presented certificate stays until the new one is used (its deadline is not
  // pushed back by renewing again with it); any other is superseded now.
  const retireAt = device.retiring_serial === keep ? (device.retire_at as number) : r.retireAt.getTime();
  const { revoked } = await revokeSelected(tx, OTHER_ACTIVE_DEVICE_CERTIFICATES, [deviceId, keep], now, r.supersede);
  await tx.changes(SET_RENEWED_SERIAL, [deviceId, r.certificate.serial, now, keep, retireAt]);
  await insertCertificate(tx, r.certificate);
  tx.appendAudit({ ...r.audit, detail: { ...r.audit.detail, retiring: keep, retireAt: new Date(retireAt).toISOString(), superseded: revoked } });
  return undefined;
}

/** Redeeming tokens and recording renewals. */
export class PostgresRedemption implements RedemptionStore {
  constructor(
    private readonly db: Postgres,
    private readonly groupCommit: GroupCommit,
  ) {}

  async redeemTokenAndRecordCertificate(redemption: Redemption): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }> {
    try {
      const conflict = await (redemption.mode === 'reprovision'
        ? this.groupCommit.run((tx) => redeem(tx, redemption))
        : this.groupCommit.runBulk(redeemBatch, redemption));
      return conflict ? { ok: false, conflict } : { ok: true };
    } catch (error) {
      if (error instanceof Abort) return { ok: false, conflict: error.conflict };
      throw error;
    }
  }

  async recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)> {
    const conflict = await this.groupCommit.run((tx) => renew(tx, renewal));
    return conflict ? { ok: false, ...conflict } : { ok: true };
  }

  async findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined> {
    const [row] = await this.db.rows(RENEWAL_OF, [presentedSerial, csrSha256]);
    return row && certificateFromRow(row);
  }

  async renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }> {
    const [row] = await this.db.rows(renewalsSince('$1', '$2'), [deviceId, since.getTime()]);
    return { count: row!.count as number, oldest: date(row!.oldest) };
  }
}
