/**
 * The embedded store: one SQLite file. Every domain operation is one synchronous
 * better-sqlite3 transaction (BEGIN IMMEDIATE when it writes, so the CLI and the server
 * serialise cleanly); prepared statements are made once.
 */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { closeSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createTempBeside } from '../files.js';
import { auditFields, auditHash, GENESIS_HASH } from './audit-hash.js';
import { CURSOR_KEY_SETTING, CursorCodec } from './cursor.js';
import { openDatabase, type Durability } from './database.js';
import { GroupCommit } from './group-commit.js';
import { migrate } from './migrate.js';
import { InvalidCursorError } from '../enrollment/model.js';
import type { AuditEvent, AuditEventInput, AuditFilter, DeviceListing, DeviceSort, FleetCounts, TokenBatchRecord, CertificateRecord, CrlScope, CertificateStatus, DeviceRecord, NewCertificate, NewToken, OperatorRecord, OperatorRole, Page, PublishedCrl, Redemption, RedemptionConflict, Renewal, RenewalConflict, RevocationReason, RevocationResult, RevokedEntry, ServerCertificate, TokenRecord, TokenStatus } from '../enrollment/model.js';
import type { Store } from './store.js';


type Row = Record<string, unknown>;
const date = (value: unknown): Date | null => (value === null || value === undefined ? null : new Date(value as number));
const text = (value: unknown): string | null => (value === null || value === undefined ? null : (value as string));

function tokenFromRow(row: Row): TokenRecord {
  return {
    id: row.id as string,
    label: text(row.label),
    deviceId: text(row.device_id),
    createdAt: date(row.created_at)!,
    createdBy: row.created_by as string,
    expiresAt: date(row.expires_at)!,
    usedAt: date(row.used_at),
    usedByDevice: text(row.used_by_device),
    csrSha256: text(row.csr_sha256),
    serial: text(row.serial),
    revokedAt: date(row.revoked_at),
    mayReprovision: row.may_reprovision === 1,
  };
}

function deviceFromRow(row: Row): DeviceRecord {
  return {
    id: row.id as string,
    status: row.status as DeviceRecord['status'],
    enrolledAt: date(row.enrolled_at)!,
    updatedAt: date(row.updated_at)!,
    currentSerial: text(row.current_serial),
    revokedAt: date(row.revoked_at),
    revocationReason: text(row.revocation_reason),
    retiringSerial: text(row.retiring_serial),
    retireAt: date(row.retire_at),
    enrolledVia: (text(row.enrolled_via) ?? 'json') as DeviceRecord['enrolledVia'],
    enrollmentLabel: text(row.enrollment_label),
  };
}

function statusFromRow(row: Row): CertificateStatus {
  return { status: row.status as CertificateStatus['status'], revokedAt: date(row.revoked_at), revocationReason: text(row.revocation_reason) };
}

function certificateFromRow(row: Row): CertificateRecord {
  return {
    serial: row.serial as string,
    kind: row.kind as CertificateRecord['kind'],
    subject: row.subject as string,
    deviceId: text(row.device_id),
    spkiSha256: row.spki_sha256 as string,
    notBefore: date(row.not_before)!,
    notAfter: date(row.not_after)!,
    issuedAt: date(row.issued_at)!,
    ...statusFromRow(row),
    tokenId: text(row.token_id),
    der: row.der as Buffer,
  };
}

function operatorFromRow(row: Row): OperatorRecord {
  return {
    name: row.name as string,
    role: row.role as OperatorRole,
    status: row.status as OperatorRecord['status'],
    createdAt: date(row.created_at)!,
    createdBy: row.created_by as string,
    revokedAt: date(row.revoked_at),
  };
}

function auditFromRow(row: Row): AuditEvent {
  return {
    id: row.id as number,
    at: date(row.at)!,
    actor: row.actor as string,
    action: row.action as string,
    outcome: row.outcome as string,
    source: text(row.source) ?? undefined,
    tokenId: text(row.token_id) ?? undefined,
    deviceId: text(row.device_id) ?? undefined,
    serial: text(row.serial) ?? undefined,
    detail: row.detail ? (JSON.parse(row.detail as string) as Record<string, unknown>) : undefined,
    prevHash: row.prev_hash as string,
    hash: row.hash as string,
  };
}

const TOKEN_STATUS_SQL: Record<TokenStatus, string> = {
  unused: 'used_at IS NULL AND revoked_at IS NULL AND expires_at > @now',
  used: 'used_at IS NOT NULL',
  expired: 'used_at IS NULL AND revoked_at IS NULL AND expires_at <= @now',
  revoked: 'used_at IS NULL AND revoked_at IS NOT NULL',
};

/** SQLite implementation of Store. */
export class SqliteStore implements Store {
  private readonly statements;
  private readonly redeemTransaction;
  private readonly renewTransaction;
  /** Enrollments, renewals and refusals' audit events: the writes that come in floods. */
  private readonly groupCommit: GroupCommit;
  private checkpointer: Worker | undefined;
  /** Listing cursors name a rowid, authenticated under the database's cursor key (migration 5). */
  private readonly cursors: CursorCodec;

  private constructor(private readonly db: Database.Database) {
    const cursorKey = db.prepare('SELECT value FROM settings WHERE key = ?').get(CURSOR_KEY_SETTING) as { value: string } | undefined;
    this.cursors = CursorCodec.fromHex(cursorKey?.value);
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      settings: s('SELECT key, value FROM settings'),
      putSetting: s('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      insertToken: s(`INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at, may_reprovision)
                      VALUES (@id, @hash, @label, @deviceId, @createdAt, @createdBy, @expiresAt, @mayReprovision)`),
      tokenByHash: s('SELECT * FROM tokens WHERE hash = ?'),
      tokenById: s('SELECT * FROM tokens WHERE id = ?'),
      revokeToken: s('UPDATE tokens SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL'),
      redeemToken: s(`UPDATE tokens SET used_at = @now, used_by_device = @deviceId, csr_sha256 = @csrSha256, serial = @serial
                      WHERE id = @tokenId AND used_at IS NULL AND revoked_at IS NULL AND expires_at > @now`),
      device: s('SELECT * FROM devices WHERE id = ?'),
      existingDevices: s('SELECT id FROM devices WHERE id IN (SELECT value FROM json_each(?))'),
      insertDevice: s(`INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial, enrolled_via, enrollment_label)
                       VALUES (@id, 'active', @now, @now, @serial, @via, @label) ON CONFLICT (id) DO NOTHING`),
      reactivateDevice: s(`UPDATE devices SET status = 'active', updated_at = @now, current_serial = @serial,
                           revoked_at = NULL, revocation_reason = NULL, retiring_serial = NULL, retire_at = NULL,
                           enrolled_via = @via, enrollment_label = @label WHERE id = @id`),
      setRenewedSerial: s(`UPDATE devices SET current_serial = @serial, updated_at = @now, retiring_serial = @retiring, retire_at = @retireAt
                           WHERE id = @id`),
      clearRetiring: s('UPDATE devices SET retiring_serial = NULL, retire_at = NULL WHERE id = ?'),
      overdueRetirements: s('SELECT id, retiring_serial FROM devices WHERE retire_at <= ?'),
      bumpRevocationSeq: s('UPDATE revocation_state SET seq = seq + 1 WHERE id = 1 RETURNING seq'),
      revocationSeq: s('SELECT seq FROM revocation_state WHERE id = 1'),
      nextCrlNumber: s('UPDATE revocation_state SET crl_number = crl_number + 1 WHERE id = 1 RETURNING crl_number'),
      publishedCrlNumber: s('SELECT crl_number FROM published_crls WHERE scope = ?'),
      publishedCrl: s('SELECT * FROM published_crls WHERE scope = ?'),
      publishCrl: s(`INSERT INTO published_crls (scope, revocation_seq, crl_number, built_at, der)
                     VALUES (@scope, @revocationSeq, @crlNumber, @builtAt, @der)
                     ON CONFLICT (scope) DO UPDATE SET revocation_seq = excluded.revocation_seq, crl_number = excluded.crl_number,
                       built_at = excluded.built_at, der = excluded.der
                     WHERE excluded.crl_number > published_crls.crl_number`),
      // Expired certificates too: one may still renew (--renew-after-expiry), and a
      // keyCompromise revocation must mark every key the device holds. The CRL lists only
      // unexpired entries, so this costs it nothing.
      activeDeviceCertificates: s(`SELECT serial FROM certificates WHERE device_id = @id AND status = 'active'`),
      otherActiveDeviceCertificates: s(`SELECT serial FROM certificates WHERE device_id = @id AND status = 'active' AND serial <> @keep`),
      activeOperatorCertificates: s(`SELECT serial FROM certificates
                                     WHERE kind = 'operator' AND subject = @id AND status = 'active' AND not_after > @now`),
      revokeCertificate: s(`UPDATE certificates SET status = 'revoked', revoked_at = @now, revocation_reason = @reason,
                              revocation_seq = @seq WHERE serial = @serial AND status = 'active'`),
      revokeDevice: s(`UPDATE devices SET status = 'revoked', updated_at = @now, revoked_at = @now, revocation_reason = @reason,
                         retiring_serial = NULL, retire_at = NULL
                       WHERE id = @id AND status = 'active'`),
      revokedSince: s('SELECT serial FROM certificates WHERE revocation_seq > ? ORDER BY revocation_seq'),
      listRevoked: s(`SELECT serial, revoked_at, revocation_reason, not_after FROM certificates
                      WHERE status = 'revoked' AND not_after > ? ORDER BY revoked_at, serial`),
      revokeTokensByLabel: s(`UPDATE tokens SET revoked_at = ?
                              WHERE label = ? AND used_at IS NULL AND revoked_at IS NULL`),
      revokeTokensByCreator: s(`UPDATE tokens SET revoked_at = ?
                                WHERE created_by = ? AND used_at IS NULL AND revoked_at IS NULL`),
      operator: s('SELECT * FROM operators WHERE name = ?'),
      operators: s('SELECT * FROM operators ORDER BY name'),
      upsertOperator: s(`INSERT INTO operators (name, role, status, created_at, created_by) VALUES (@name, @role, 'active', @now, @createdBy)
                         ON CONFLICT (name) DO UPDATE SET role = excluded.role, status = 'active', created_at = excluded.created_at,
                           created_by = excluded.created_by, revoked_at = NULL
                         WHERE operators.status = 'revoked'`),
      revokeOperator: s(`UPDATE operators SET status = 'revoked', revoked_at = @now WHERE name = @id AND status = 'active'`),
      certificate: s('SELECT * FROM certificates WHERE serial = ?'),
      certificateStatus: s('SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = ?'),
      serverCertificateStatus: s(`SELECT 'active' AS status, NULL AS revoked_at, NULL AS revocation_reason FROM server_certificates WHERE serial = ?`),
      insertServerCertificate: s(`INSERT INTO server_certificates (serial, subject, not_before, not_after, issued_at, der)
                                  VALUES (@serial, @subject, @notBefore, @notAfter, @issuedAt, @der) ON CONFLICT (serial) DO NOTHING`),
      // An id bound to a token still waiting for its device is that device's: an unbound
      // token may not take it first.
      reservedId: s(`SELECT 1 FROM tokens WHERE device_id = @id AND used_at IS NULL AND revoked_at IS NULL
                       AND expires_at > @now LIMIT 1`),
      activeOperator: s(`SELECT 1 FROM operators WHERE name = ? AND status = 'active'`),
      renewalCount: s(`SELECT count(*) AS count, min(issued_at) AS oldest FROM certificates
                       WHERE device_id = @id AND issued_at > @since AND token_id IS NULL`),
      // A key is never certified again once it was on another device, on an operator, or
      // on any certificate revoked for keyCompromise (this device's own included).
      keyTaken: s(`SELECT 1 FROM certificates WHERE spki_sha256 = ?
                     AND (device_id IS NULL OR device_id <> ? OR revocation_reason = 'keyCompromise') LIMIT 1`),
      insertCertificate: s(`INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                              issued_at, status, token_id, der, renewed_from, csr_sha256)
                            VALUES (@serial, @kind, @subject, @deviceId, @spkiSha256, @notBefore, @notAfter,
                              @issuedAt, 'active', @tokenId, @der, @renewedFrom, @csrSha256)`),
      renewalOf: s(`SELECT * FROM certificates WHERE renewed_from = ? AND csr_sha256 = ? ORDER BY issued_at DESC LIMIT 1`),
      listAudit: s('SELECT * FROM audit_events WHERE id > ? AND at >= ? ORDER BY id LIMIT ?'),
      lastAuditHash: s('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1'),
      insertAudit: s(`INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
                      VALUES (@at, @actor, @action, @outcome, @source, @tokenId, @deviceId, @serial, @detail, @prevHash, @hash)`),
    };

    this.redeemTransaction = db.transaction((r: Redemption): RedemptionConflict | undefined => {
      const deviceId = r.certificate.deviceId;
      const now = r.now.getTime();
      const redeemed = this.statements.redeemToken.run({
        tokenId: r.tokenId,
        now,
        deviceId,
        csrSha256: r.csrSha256,
        serial: r.certificate.serial,
      });
      if (redeemed.changes !== 1) return 'token_unavailable';
      if (this.statements.keyTaken.get(r.certificate.spkiSha256, deviceId)) return abort('key_reused');
      if (r.mode === 'unbound' && this.statements.reservedId.get({ id: deviceId, now })) return abort('device_exists');
      const via = { via: r.via?.protocol ?? 'json', label: r.via?.label ?? null };
      const inserted = this.statements.insertDevice.run({ id: deviceId, now, serial: r.certificate.serial, ...via });
      let audit = r.audit;
      if (inserted.changes !== 1) {
        if (r.mode !== 'reprovision') return abort('device_exists');
        const previous = deviceFromRow(this.statements.device.get(deviceId) as Row);
        const { revoked } = this.revokeAll(this.statements.activeDeviceCertificates, { id: deviceId, now }, r.supersede);
        this.statements.reactivateDevice.run({ id: deviceId, now, serial: r.certificate.serial, ...via });
        audit = {
          ...audit,
          action: `${audit.action}.reprovision`,
          detail: { ...audit.detail, previousStatus: previous.status, previousReason: previous.revocationReason, superseded: revoked },
        };
      }
      this.insertCertificate(r.certificate);
      this.insertAudit(audit);
      return undefined;
    });

    this.groupCommit = new GroupCommit(db);
    this.renewTransaction = db.transaction((r: Renewal): RenewalConflict | undefined => {
      const deviceId = r.certificate.deviceId;
      const now = r.now.getTime();
      const device = this.statements.device.get(deviceId) as Row | undefined;
      if (device?.status !== 'active') return { conflict: 'device_not_active' };
      // What authenticated the request may have been revoked or superseded since (a
      // re-provisioning, a retirement): only the current or the retiring certificate renews.
      const keep = r.presentedSerial;
      const presented = this.statements.certificateStatus.get(keep) as Row | undefined;
      if (presented?.status !== 'active' || (keep !== device.current_serial && keep !== device.retiring_serial)) {
        return { conflict: 'certificate_not_current' };
      }
      const earlier = r.certificate.csrSha256 === undefined ? undefined : (this.statements.renewalOf.get(keep, r.certificate.csrSha256) as Row | undefined);
      if (earlier) return { conflict: 'already_renewed', serial: earlier.serial as string };
      if (this.statements.keyTaken.get(r.certificate.spkiSha256, deviceId)) return { conflict: 'key_reused' };
      const since = r.limit.since.getTime();
      const recent = this.statements.renewalCount.get({ id: deviceId, since }) as { count: number; oldest: number | null };
      if (recent.count >= r.limit.max) return { conflict: 'renewal_limit', retryAt: new Date((recent.oldest ?? since) + (now - since)) };
      // The presented certificate stays until the new one is used (its deadline is not
      // pushed back by renewing again with it); any other is superseded now.
      const retireAt = device.retiring_serial === keep ? (device.retire_at as number) : r.retireAt.getTime();
      const { revoked } = this.revokeAll(this.statements.otherActiveDeviceCertificates, { id: deviceId, now, keep }, r.supersede);
      this.statements.setRenewedSerial.run({ id: deviceId, now, serial: r.certificate.serial, retiring: keep, retireAt });
      this.insertCertificate(r.certificate);
      this.insertAudit({ ...r.audit, detail: { ...r.audit.detail, retiring: keep, retireAt: new Date(retireAt).toISOString(), superseded: revoked } });
      return undefined;
    });
  }

  /** Opens the database file, applying pending migrations. */
  static open(path: string, durability: Durability = 'full', options: { backgroundCheckpoints?: boolean | undefined } = {}): SqliteStore {
    const db = openDatabase(path, durability);
    migrate(db);
    const store = new SqliteStore(db);
    if (options.backgroundCheckpoints) store.startCheckpointer(path);
    return store;
  }

  /**
   * Moves WAL checkpoints off this thread (a serving process): a thread of its own
   * checkpoints every half second, and commits checkpoint themselves only should it fall
   * 80 MB behind. Run from TypeScript sources (tests in-process), the compiled thread is
   * not there and commits checkpoint as SQLite does by default.
   */
  private startCheckpointer(path: string): void {
    const script = new URL('./checkpoint-thread.js', import.meta.url);
    if (!existsSync(fileURLToPath(script))) return;
    this.db.pragma('wal_autocheckpoint = 20000');
    this.checkpointer = new Worker(script, { workerData: { path, intervalMs: 500 } });
    this.checkpointer.unref();
  }

  private insertCertificate(certificate: NewCertificate): void {
    this.statements.insertCertificate.run({
      ...certificate,
      renewedFrom: certificate.renewedFrom ?? null,
      csrSha256: certificate.csrSha256 ?? null,
      notBefore: certificate.notBefore.getTime(),
      notAfter: certificate.notAfter.getTime(),
      issuedAt: certificate.issuedAt.getTime(),
    });
  }

  private insertAudit(event: AuditEventInput): void {
    const last = this.statements.lastAuditHash.get() as { hash: string } | undefined;
    const prevHash = last?.hash ?? GENESIS_HASH;
    this.statements.insertAudit.run({
      ...auditFields(event),
      at: event.at.getTime(),
      detail: event.detail ? JSON.stringify(event.detail) : null,
      prevHash,
      hash: auditHash(prevHash, event),
    });
  }

  /** Takes the next revocation sequence number. */
  private bumpSeq(): number {
    return (this.statements.bumpRevocationSeq.get() as { seq: number }).seq;
  }

  private currentSeq(): number {
    return (this.statements.revocationSeq.get() as { seq: number }).seq;
  }

  /**
   * Revokes the certificates a selection statement finds, under one new sequence number;
   * the sequence moves only when something was revoked.
   */
  private revokeAll(select: Database.Statement, params: { readonly now: number } & Record<string, unknown>, reason: RevocationReason): RevocationResult {
    const serials = (select.all(params) as { serial: string }[]).map((row) => row.serial);
    return this.revokeSerials(serials, params.now, reason);
  }

  /** Revokes those of `serials` still active, under one new sequence number when any. */
  private revokeSerials(serials: readonly string[], now: number, reason: RevocationReason): RevocationResult {
    const revoked: string[] = [];
    let seq: number | undefined;
    for (const serial of serials) {
      seq ??= this.bumpSeq();
      if (this.statements.revokeCertificate.run({ serial, now, reason, seq }).changes === 1) revoked.push(serial);
    }
    // An unused number is harmless: watchers only compare it.
    return { revoked, seq: seq ?? this.currentSeq() };
  }

  async getSettings(): Promise<Record<string, string>> {
    const rows = this.statements.settings.all() as { key: string; value: string }[];
    return Object.fromEntries(rows.map((row) => [row.key, row.value]));
  }

  async putSettings(settings: Record<string, string>): Promise<void> {
    this.db.transaction(() => {
      for (const [key, value] of Object.entries(settings)) this.statements.putSetting.run(key, value);
    }).immediate();
  }

  async createTokens(tokens: readonly NewToken[], audit: AuditEventInput, minter?: string): Promise<{ ok: boolean }> {
    return this.db.transaction(() => {
      // An operator revoked while its request was in flight mints nothing.
      if (minter !== undefined && !this.statements.activeOperator.get(minter)) return { ok: false };
      for (const token of tokens) {
        this.statements.insertToken.run({
          ...token,
          createdAt: token.createdAt.getTime(),
          expiresAt: token.expiresAt.getTime(),
          mayReprovision: token.mayReprovision ? 1 : 0,
        });
      }
      this.insertAudit(audit);
      return { ok: true };
    }).immediate();
  }

  async findRenewal(presentedSerial: string, csrSha256: string): Promise<CertificateRecord | undefined> {
    const row = this.statements.renewalOf.get(presentedSerial, csrSha256) as Row | undefined;
    return row && certificateFromRow(row);
  }

  async renewalCount(deviceId: string, since: Date): Promise<{ count: number; oldest: Date | null }> {
    const row = this.statements.renewalCount.get({ id: deviceId, since: since.getTime() }) as { count: number; oldest: number | null };
    return { count: row.count, oldest: date(row.oldest) };
  }

  async findTokenByHash(hash: Buffer): Promise<TokenRecord | undefined> {
    const row = this.statements.tokenByHash.get(hash) as Row | undefined;
    return row && tokenFromRow(row);
  }

  async listTokens(query: {
    status?: TokenStatus | undefined;
    label?: string | undefined;
    limit: number;
    cursor?: string | undefined;
    now: Date;
  }): Promise<Page<TokenRecord>> {
    const where: string[] = [];
    if (query.status) where.push(TOKEN_STATUS_SQL[query.status]);
    if (query.label !== undefined) where.push('label = @label');
    return this.page('tokens', where, query, tokenFromRow, { now: query.now.getTime(), label: query.label ?? null });
  }

  async revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    return this.db.transaction(() => {
      const changed = this.statements.revokeToken.run(audit.at.getTime(), id).changes === 1;
      const row = this.statements.tokenById.get(id) as Row | undefined;
      if (changed) this.insertAudit(audit);
      return row && tokenFromRow(row);
    }).immediate();
  }

  async findDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = this.statements.device.get(id) as Row | undefined;
    return row && deviceFromRow(row);
  }

  async findCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const row = this.statements.certificate.get(serial) as Row | undefined;
    return row && certificateFromRow(row);
  }

  async existingDeviceIds(ids: readonly string[]): Promise<string[]> {
    return (this.statements.existingDevices.all(JSON.stringify(ids)) as { id: string }[]).map((row) => row.id);
  }

  async certificateStatus(serial: string): Promise<CertificateStatus | undefined> {
    const row = (this.statements.certificateStatus.get(serial) ?? this.statements.serverCertificateStatus.get(serial)) as Row | undefined;
    return row && statusFromRow(row);
  }

  async recordServerCertificate(certificate: ServerCertificate): Promise<void> {
    this.statements.insertServerCertificate.run({
      ...certificate,
      notBefore: certificate.notBefore.getTime(),
      notAfter: certificate.notAfter.getTime(),
      issuedAt: certificate.issuedAt.getTime(),
    });
  }

  async redeemTokenAndRecordCertificate(
    redemption: Redemption,
  ): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }> {
    try {
      const conflict = await this.groupCommit.run(() => this.redeemTransaction(redemption));
      return conflict ? { ok: false, conflict } : { ok: true };
    } catch (error) {
      if (error instanceof Abort) return { ok: false, conflict: error.conflict as RedemptionConflict };
      throw error;
    }
  }

  async recordRenewal(renewal: Renewal): Promise<{ ok: true } | ({ ok: false } & RenewalConflict)> {
    const conflict = await this.groupCommit.run(() => this.renewTransaction(renewal));
    return conflict ? { ok: false, ...conflict } : { ok: true };
  }

  async retireReplaced(deviceId: string, serial: string, reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    return this.db.transaction(() => {
      const device = this.statements.device.get(deviceId) as Row | undefined;
      const retiring = text(device?.retiring_serial);
      if (!device || !retiring || device.current_serial !== serial) return { revoked: [], seq: this.currentSeq() };
      return this.retire([{ id: deviceId, retiring_serial: retiring }], reason, audit);
    }).immediate();
  }

  async retireOverdue(reason: RevocationReason, audit: AuditEventInput): Promise<RevocationResult> {
    const select = () => this.statements.overdueRetirements.all(audit.at.getTime()) as { id: string; retiring_serial: string }[];
    // One indexed read when nothing is due, which is nearly always: no write lock for it.
    if (select().length === 0) return { revoked: [], seq: this.currentSeq() };
    return this.db.transaction(() => this.retire(select(), reason, audit)).immediate();
  }

  /** Revokes the replaced certificates of these devices, one audit event each. */
  private retire(devices: readonly { id: string; retiring_serial: string }[], reason: RevocationReason, audit: AuditEventInput): RevocationResult {
    const result = this.revokeSerials(
      devices.map((device) => device.retiring_serial),
      audit.at.getTime(),
      reason,
    );
    for (const device of devices) {
      this.statements.clearRetiring.run(device.id);
      if (result.revoked.includes(device.retiring_serial)) {
        this.insertAudit({ ...audit, deviceId: device.id, serial: device.retiring_serial, detail: { ...audit.detail, reason } });
      }
    }
    return result;
  }

  async revokeTokensByLabel(label: string, audit: AuditEventInput): Promise<number> {
    return this.db.transaction(() => {
      const { changes } = this.statements.revokeTokensByLabel.run(audit.at.getTime(), label);
      this.insertAudit({ ...audit, detail: { ...audit.detail, label, revoked: changes } });
      return changes;
    }).immediate();
  }

  async listDevices(query: {
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceRecord>> {
    const where: string[] = [];
    if (query.status) where.push('status = @status');
    if (query.q) where.push("id LIKE @pattern ESCAPE '\\'");
    return this.page('devices', where, query, deviceFromRow, {
      status: query.status ?? null,
      pattern: `%${(query.q ?? '').replace(/[\\%_]/g, (c) => `\\${c}`)}%`,
    });
  }

  async listCertificates(query: {
    deviceId?: string | undefined;
    kind?: CertificateRecord['kind'] | undefined;
    status?: CertificateRecord['status'] | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<CertificateRecord>> {
    const where: string[] = [];
    if (query.deviceId !== undefined) where.push('device_id = @deviceId');
    if (query.kind) where.push('kind = @kind');
    if (query.status) where.push('status = @status');
    return this.page('certificates', where, query, certificateFromRow, {
      deviceId: query.deviceId ?? null,
      kind: query.kind ?? null,
      status: query.status ?? null,
    });
  }

  private cursorPosition(table: string, cursor: string | undefined): number {
    if (cursor === undefined) return 0;
    const position = this.cursors.decode(table, cursor);
    if (position === undefined) throw new InvalidCursorError();
    return position;
  }

  /** Keyset pagination by rowid: stable under concurrent inserts, O(limit) per page. */
  private page<T>(
    table: 'devices' | 'certificates' | 'tokens',
    where: string[],
    query: { limit: number; cursor?: string | undefined },
    fromRow: (row: Row) => T,
    params: Record<string, unknown>,
  ): Page<T> {
    const conditions = ['rowid > @after', ...where].join(' AND ');
    const rows = this.db
      .prepare(`SELECT rowid AS _rowid, * FROM ${table} WHERE ${conditions} ORDER BY rowid LIMIT @limit`)
      .all({ ...params, after: this.cursorPosition(table, query.cursor), limit: query.limit + 1 }) as Row[];
    const more = rows.length > query.limit;
    const items = rows.slice(0, query.limit);
    return { items: items.map(fromRow), nextCursor: more ? this.cursors.encode(table, items[items.length - 1]!._rowid as number) : null };
  }

  async revokeDevice(
    id: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { device: DeviceRecord }) | undefined> {
    return this.db.transaction(() => {
      const now = audit.at.getTime();
      if (!this.statements.device.get(id)) return undefined;
      const result = this.revokeAll(this.statements.activeDeviceCertificates, { id, now }, reason);
      const changed = this.statements.revokeDevice.run({ id, now, reason }).changes === 1;
      if (changed || result.revoked.length) {
        this.insertAudit({ ...audit, deviceId: id, detail: { ...audit.detail, reason, serials: result.revoked } });
      }
      return { ...result, device: deviceFromRow(this.statements.device.get(id) as Row) };
    }).immediate();
  }

  async revokeCertificate(
    serial: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { certificate: CertificateRecord }) | undefined> {
    return this.db.transaction(() => {
      const row = this.statements.certificate.get(serial) as Row | undefined;
      if (!row) return undefined;
      let result: RevocationResult = { revoked: [], seq: this.currentSeq() };
      if (row.status === 'active') {
        const seq = this.bumpSeq();
        this.statements.revokeCertificate.run({ serial, now: audit.at.getTime(), reason, seq });
        result = { revoked: [serial], seq };
        this.insertAudit({ ...audit, serial, deviceId: text(row.device_id) ?? undefined, detail: { ...audit.detail, reason } });
      }
      return { ...result, certificate: certificateFromRow(this.statements.certificate.get(serial) as Row) };
    }).immediate();
  }

  async revocationSeq(): Promise<number> {
    return this.currentSeq();
  }

  async revokedSince(seq: number): Promise<string[]> {
    return (this.statements.revokedSince.all(seq) as { serial: string }[]).map((row) => row.serial);
  }

  async listRevoked(now: Date): Promise<RevokedEntry[]> {
    const rows = this.statements.listRevoked.all(now.getTime()) as Row[];
    return rows.map((row) => ({
      serial: row.serial as string,
      revokedAt: date(row.revoked_at)!,
      reason: (row.revocation_reason ?? 'unspecified') as RevocationReason,
      notAfter: date(row.not_after)!,
    }));
  }

  async nextCrlNumber(): Promise<number> {
    return this.db.transaction(() => (this.statements.nextCrlNumber.get() as { crl_number: number }).crl_number).immediate();
  }

  async publishedCrlNumber(scope: CrlScope): Promise<number | undefined> {
    return (this.statements.publishedCrlNumber.get(scope) as { crl_number: number } | undefined)?.crl_number;
  }

  async publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined> {
    return this.readPublishedCrl(scope);
  }

  async publishCrl(crl: PublishedCrl): Promise<PublishedCrl> {
    return this.db
      .transaction(() => {
        this.statements.publishCrl.run({ ...crl, builtAt: crl.builtAt.getTime() });
        return this.readPublishedCrl(crl.scope)!;
      })
      .immediate();
  }

  private readPublishedCrl(scope: CrlScope): PublishedCrl | undefined {
    const row = this.statements.publishedCrl.get(scope) as Row | undefined;
    if (!row) return undefined;
    return {
      scope,
      revocationSeq: row.revocation_seq as number,
      crlNumber: row.crl_number as number,
      builtAt: date(row.built_at)!,
      der: row.der as Buffer,
    };
  }

  async recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }> {
    return this.db.transaction(() => {
      const now = audit.at.getTime();
      const upserted = this.statements.upsertOperator.run({ name: operator.name, role: operator.role, now, createdBy: operator.createdBy });
      if (upserted.changes !== 1) return { ok: false as const, conflict: 'operator_exists' as const };
      this.insertCertificate(operator.certificate);
      this.insertAudit(audit);
      return { ok: true as const };
    }).immediate();
  }

  async findOperator(name: string): Promise<OperatorRecord | undefined> {
    const row = this.statements.operator.get(name) as Row | undefined;
    return row && operatorFromRow(row);
  }

  async listOperators(): Promise<OperatorRecord[]> {
    return (this.statements.operators.all() as Row[]).map(operatorFromRow);
  }

  async revokeOperator(
    name: string,
    tokensCreatedBy: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined> {
    return this.db.transaction(() => {
      if (!this.statements.operator.get(name)) return undefined;
      const now = audit.at.getTime();
      const result = this.revokeAll(this.statements.activeOperatorCertificates, { id: name, now }, reason);
      const changed = this.statements.revokeOperator.run({ id: name, now }).changes === 1;
      const revokedTokens = this.statements.revokeTokensByCreator.run(now, tokensCreatedBy).changes;
      if (changed || result.revoked.length || revokedTokens) {
        this.insertAudit({ ...audit, detail: { ...audit.detail, serials: result.revoked, revokedTokens } });
      }
      return { ...result, operator: operatorFromRow(this.statements.operator.get(name) as Row), revokedTokens };
    }).immediate();
  }

  async appendAudit(event: AuditEventInput): Promise<void> {
    await this.groupCommit.run(() => this.insertAudit(event));
  }

  async pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>> {
    const afterId = this.cursorPosition('audit_events', query.cursor);
    const events = await this.listAudit({ since: query.since, afterId, limit: query.limit + 1 });
    const items = events.slice(0, query.limit);
    const last = items[items.length - 1];
    return { items, nextCursor: events.length > query.limit && last ? this.cursors.encode('audit_events', last.id) : null };
  }

  async listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]> {
    const rows = this.statements.listAudit.all(query.afterId ?? 0, query.since?.getTime() ?? 0, query.limit) as Row[];
    return rows.map(auditFromRow);
  }

  async backup(file: string): Promise<{ readonly bytes: number }> {
    if (existsSync(file)) throw new Error(`${file} already exists`);
    // Token hashes and the audit trail are nobody else's business: the copy goes into a
    // fresh 0600 file nobody else can have prepared.
    const { temp, fd } = createTempBeside(file, 0o600);
    closeSync(fd);
    try {
      // The backup API copies page by page and restarts on concurrent writes from other
      // connections, so the copy is one consistent snapshot.
      await this.db.backup(temp);
      // The copy is a WAL database like its source; as a rollback-journal file it is one
      // self-contained file, and closing it leaves no -wal or -shm beside it.
      const copy = new Database(temp);
      try {
        copy.pragma('journal_mode = DELETE');
        const [check] = copy.pragma('integrity_check') as { integrity_check: string }[];
        if (check?.integrity_check !== 'ok') throw new Error(`backup failed its integrity check: ${check?.integrity_check}`);
      } finally {
        copy.close();
      }
      renameSync(temp, file);
      return { bytes: statSync(file).size };
    } catch (error) {
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${temp}${suffix}`, { force: true });
      throw error;
    }
  }

  private expiring: Database.Statement | undefined;

  async countExpiring(now: Date, soon: Date, later: Date): Promise<{ soon: number; later: number }> {
    this.expiring ??= this.db.prepare(`SELECT COUNT(*) AS later, COALESCE(SUM(not_after <= @soon), 0) AS soon FROM certificates
                                       WHERE status = 'active' AND not_after > @now AND not_after <= @later`);
    const row = this.expiring.get({ now: now.getTime(), soon: soon.getTime(), later: later.getTime() }) as { soon: number; later: number };
    return { soon: row.soon, later: row.later };
  }

  /** The console's statements, prepared on first use. */
  private consoleStatements: ReturnType<SqliteStore['prepareConsoleStatements']> | undefined;

  private prepareConsoleStatements() {
    const s = (sql: string) => this.db.prepare(sql);
    // Each listing exists with and without a status filter, so that SQLite plans each one
    // once against the index that fits it. The id search is a LIKE over the index's own id
    // column: it never reads the table for rows that do not match.
    const search = "(@pattern IS NULL OR d.id LIKE @pattern ESCAPE '\\')";
    const enrolled = (status: boolean, index: string) =>
      s(`SELECT d.rowid AS _key, d.*, c.not_after AS current_not_after FROM devices d INDEXED BY ${index}
         LEFT JOIN certificates c ON c.serial = d.current_serial
         WHERE ${status ? 'd.status = @status AND ' : ''}(d.enrolled_at, d.id) < (@at, @id) AND ${search}
         ORDER BY ${status ? 'd.status DESC, ' : ''}d.enrolled_at DESC, d.id DESC LIMIT @limit`);
    // A revoked device's certificates are all revoked (revokeDevice), so the revoked ones are
    // found from the index alone instead of reading a device row per certificate (~0.6 s
    // against a few ms with a million devices); an active device may hold a revoked current
    // certificate (one revoked by serial), so for them the device row decides.
    const expiryStatus = "AND d.status = @status AND (@status = 'active' OR c.status = 'revoked')";
    const expiry = (status: boolean) =>
      s(`SELECT c.rowid AS _key, d.*, c.not_after AS current_not_after FROM certificates c INDEXED BY certificates_device_expiry
         JOIN devices d ON d.id = c.device_id AND d.current_serial = c.serial
         WHERE c.kind = 'device' AND (c.not_after, c.status, c.rowid) > (@at, @certStatus, @after)
           ${status ? expiryStatus : ''} AND ${search}
         ORDER BY c.not_after, c.status, c.rowid LIMIT @limit`);
    return {
      enrolled: enrolled(false, 'devices_enrolled'),
      enrolledByStatus: enrolled(true, 'devices_status_enrolled'),
      expiry: expiry(false),
      expiryByStatus: expiry(true),
      deviceKey: s('SELECT enrolled_at, id FROM devices WHERE rowid = ?'),
      certificateKey: s(`SELECT not_after, status FROM certificates WHERE rowid = ? AND kind = 'device'`),
      // Both read an index alone (devices_status_enrolled, certificates_device_expiry).
      devicesByStatus: s('SELECT status, count(*) AS n FROM devices INDEXED BY devices_status_enrolled GROUP BY status'),
      expiringDevices: s(`SELECT count(*) AS n FROM certificates INDEXED BY certificates_device_expiry
                          WHERE kind = 'device' AND not_after > @now AND not_after <= @soon AND status = 'active'`),
      countRevoked: s(`SELECT count(*) AS n FROM certificates WHERE status = 'revoked' AND not_after > ?`),
      tokenBatches: s(`SELECT label, min(created_at) AS first_created_at, max(created_at) AS last_created_at,
                         max(expires_at) AS last_expires_at, min(created_by) AS created_by, count(*) AS total,
                         sum(used_at IS NULL AND revoked_at IS NULL AND expires_at > @now) AS unused,
                         sum(used_at IS NOT NULL) AS used,
                         sum(used_at IS NULL AND revoked_at IS NULL AND expires_at <= @now) AS expired,
                         sum(used_at IS NULL AND revoked_at IS NOT NULL) AS revoked
                       FROM tokens GROUP BY label ORDER BY last_created_at DESC LIMIT @limit`),
      // One statement per combination of filters, so each is planned against its index.
      audit: new Map<string, Database.Statement>(),
    };
  }

  private get console() {
    this.consoleStatements ??= this.prepareConsoleStatements();
    return this.consoleStatements;
  }

  async browseDevices(query: {
    sort: DeviceSort;
    status?: DeviceRecord['status'] | undefined;
    q?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<DeviceListing>> {
    // A cursor names the last row's rowid (a device's, or its certificate's when sorted by
    // expiry); the row's sort key is read back from it, and neither enrolled_at nor a
    // certificate's not_after ever changes, so the next page starts where this one ended.
    const listing = query.sort === 'enrolled' ? 'devices.enrolled' : 'certificates.device_expiry';
    const after = query.cursor === undefined ? undefined : this.cursors.decode(listing, query.cursor);
    if (query.cursor !== undefined && after === undefined) throw new InvalidCursorError();
    const params: Record<string, unknown> = {
      status: query.status ?? null,
      pattern: query.q ? `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null,
      limit: query.limit + 1,
    };
    let rows: Row[];
    if (query.sort === 'enrolled') {
      const key = after === undefined ? undefined : (this.console.deviceKey.get(after) as Row | undefined);
      if (after !== undefined && !key) throw new InvalidCursorError();
      Object.assign(params, { at: key?.enrolled_at ?? Number.MAX_SAFE_INTEGER, id: key?.id ?? '\u{10ffff}' });
      rows = (query.status ? this.console.enrolledByStatus : this.console.enrolled).all(params) as Row[];
    } else {
      const key = after === undefined ? undefined : (this.console.certificateKey.get(after) as Row | undefined);
      if (after !== undefined && !key) throw new InvalidCursorError();
      Object.assign(params, { at: key?.not_after ?? -1, certStatus: key?.status ?? '', after: after ?? 0 });
      rows = (query.status ? this.console.expiryByStatus : this.console.expiry).all(params) as Row[];
    }
    const items = rows.slice(0, query.limit);
    const last = items[items.length - 1];
    return {
      items: items.map((row) => ({ ...deviceFromRow(row), currentNotAfter: date(row.current_not_after) })),
      nextCursor: rows.length > query.limit && last ? this.cursors.encode(listing, last._key as number) : null,
    };
  }

  async countFleet(now: Date, soon: Date): Promise<FleetCounts> {
    const byStatus = new Map((this.console.devicesByStatus.all() as { status: string; n: number }[]).map((row) => [row.status, row.n]));
    const expiring = this.console.expiringDevices.get({ now: now.getTime(), soon: soon.getTime() }) as { n: number };
    return { active: byStatus.get('active') ?? 0, revoked: byStatus.get('revoked') ?? 0, expiringSoon: expiring.n };
  }

  async countRevoked(now: Date): Promise<number> {
    return (this.console.countRevoked.get(now.getTime()) as { n: number }).n;
  }

  async listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]> {
    const rows = this.console.tokenBatches.all({ now: query.now.getTime(), limit: query.limit }) as Row[];
    return rows.map((row) => ({
      label: text(row.label),
      firstCreatedAt: date(row.first_created_at)!,
      lastCreatedAt: date(row.last_created_at)!,
      lastExpiresAt: date(row.last_expires_at)!,
      createdBy: row.created_by as string,
      total: row.total as number,
      unused: row.unused as number,
      used: row.used as number,
      expired: row.expired as number,
      revoked: row.revoked as number,
    }));
  }

  async browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>> {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : this.cursors.decode('audit_events.newest', query.cursor);
    if (before === undefined) throw new InvalidCursorError();
    const filters = (['actor', 'deviceId', 'action'] as const).filter((field) => query[field] !== undefined);
    const columns = { actor: 'actor', deviceId: 'device_id', action: 'action' } as const;
    const key = filters.join(',');
    let statement = this.console.audit.get(key);
    if (!statement) {
      const where = ['id < @before', ...filters.map((field) => `${columns[field]} = @${field}`)].join(' AND ');
      statement = this.db.prepare(`SELECT * FROM audit_events WHERE ${where} ORDER BY id DESC LIMIT @limit`);
      this.console.audit.set(key, statement);
    }
    const rows = statement.all({
      before,
      actor: query.actor ?? null,
      deviceId: query.deviceId ?? null,
      action: query.action ?? null,
      limit: query.limit + 1,
    }) as Row[];
    const items = rows.slice(0, query.limit).map(auditFromRow);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > query.limit && last ? this.cursors.encode('audit_events.newest', last.id) : null };
  }

  async close(): Promise<void> {
    this.groupCommit.drain();
    if (this.checkpointer) {
      // Unref'd so that it never keeps a process alive, but close() waits for it: with
      // nothing else left (a server that failed to start), the event loop would end the
      // process mid-close, exit code 0, before the caller could report anything.
      this.checkpointer.ref();
      const exited = once(this.checkpointer, 'exit');
      this.checkpointer.postMessage('stop');
      await exited;
    }
    this.db.close();
  }
}

/** Thrown inside a transaction to roll back what it already wrote and report a conflict. */
class Abort extends Error {
  constructor(readonly conflict: string) {
    super(conflict);
  }
}

function abort(conflict: RedemptionConflict): never {
  throw new Abort(conflict);
}
