/**
 * The embedded store: one SQLite file. Every domain operation is one synchronous
 * better-sqlite3 transaction (BEGIN IMMEDIATE when it writes, so the CLI and the server
 * serialise cleanly); prepared statements are made once.
 */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { chmodSync, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { auditFields, auditHash, GENESIS_HASH } from './audit-hash.js';
import { openDatabase, type Durability } from './database.js';
import { GroupCommit } from './group-commit.js';
import { migrate } from './migrate.js';
import { InvalidCursorError } from './store.js';
import type {
  AuditEvent,
  AuditEventInput,
  CertificateRecord,
  CrlScope,
  CertificateStatus,
  DeviceRecord,
  NewCertificate,
  NewToken,
  OperatorRecord,
  OperatorRole,
  Page,
  PublishedCrl,
  Redemption,
  RedemptionConflict,
  Renewal,
  RenewalConflict,
  RevocationReason,
  RevocationResult,
  RevokedEntry,
  Store,
  TokenRecord,
  TokenStatus,
} from './store.js';


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

const encodeCursor = (rowid: number): string => Buffer.from(`r${rowid}`).toString('base64url');

/** Decodes a listing cursor; undefined when it is not one of ours. */
function decodeCursor(cursor: string): number | undefined {
  const match = /^r(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  return match ? Number(match[1]) : undefined;
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

  private constructor(private readonly db: Database.Database) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      settings: s('SELECT key, value FROM settings'),
      putSetting: s('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      insertToken: s(`INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at)
                      VALUES (@id, @hash, @label, @deviceId, @createdAt, @createdBy, @expiresAt)`),
      tokenByHash: s('SELECT * FROM tokens WHERE hash = ?'),
      tokenById: s('SELECT * FROM tokens WHERE id = ?'),
      revokeToken: s('UPDATE tokens SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL'),
      redeemToken: s(`UPDATE tokens SET used_at = @now, used_by_device = @deviceId, csr_sha256 = @csrSha256, serial = @serial
                      WHERE id = @tokenId AND used_at IS NULL AND revoked_at IS NULL AND expires_at > @now`),
      device: s('SELECT * FROM devices WHERE id = ?'),
      insertDevice: s(`INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial)
                       VALUES (@id, 'active', @now, @now, @serial) ON CONFLICT (id) DO NOTHING`),
      reactivateDevice: s(`UPDATE devices SET status = 'active', updated_at = @now, current_serial = @serial,
                           revoked_at = NULL, revocation_reason = NULL WHERE id = @id`),
      setCurrentSerial: s(`UPDATE devices SET current_serial = @serial, updated_at = @now
                           WHERE id = @id AND status = 'active'`),
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
      activeDeviceCertificates: s(`SELECT serial FROM certificates
                                   WHERE device_id = @id AND status = 'active' AND not_after > @now`),
      activeOperatorCertificates: s(`SELECT serial FROM certificates
                                     WHERE kind = 'operator' AND subject = @id AND status = 'active' AND not_after > @now`),
      revokeCertificate: s(`UPDATE certificates SET status = 'revoked', revoked_at = @now, revocation_reason = @reason,
                              revocation_seq = @seq WHERE serial = @serial AND status = 'active'`),
      revokeDevice: s(`UPDATE devices SET status = 'revoked', updated_at = @now, revoked_at = @now, revocation_reason = @reason
                       WHERE id = @id AND status = 'active'`),
      revokedSince: s('SELECT serial FROM certificates WHERE revocation_seq > ? ORDER BY revocation_seq'),
      listRevoked: s(`SELECT serial, revoked_at, revocation_reason, not_after FROM certificates
                      WHERE status = 'revoked' AND not_after > ? ORDER BY revoked_at, serial`),
      revokeTokensByLabel: s(`UPDATE tokens SET revoked_at = ?
                              WHERE label = ? AND used_at IS NULL AND revoked_at IS NULL`),
      operator: s('SELECT * FROM operators WHERE name = ?'),
      operators: s('SELECT * FROM operators ORDER BY name'),
      upsertOperator: s(`INSERT INTO operators (name, role, status, created_at, created_by) VALUES (@name, @role, 'active', @now, @createdBy)
                         ON CONFLICT (name) DO UPDATE SET role = excluded.role, status = 'active', created_at = excluded.created_at,
                           created_by = excluded.created_by, revoked_at = NULL
                         WHERE operators.status = 'revoked'`),
      revokeOperator: s(`UPDATE operators SET status = 'revoked', revoked_at = @now WHERE name = @id AND status = 'active'`),
      certificate: s('SELECT * FROM certificates WHERE serial = ?'),
      certificateStatus: s('SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = ?'),
      keyOwner: s(`SELECT device_id FROM certificates WHERE spki_sha256 = ? AND device_id IS NOT NULL AND device_id <> ? LIMIT 1`),
      insertCertificate: s(`INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                              issued_at, status, token_id, der)
                            VALUES (@serial, @kind, @subject, @deviceId, @spkiSha256, @notBefore, @notAfter,
                              @issuedAt, 'active', @tokenId, @der)`),
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
      if (this.statements.keyOwner.get(r.certificate.spkiSha256, deviceId)) return abort('key_reused');
      const inserted = this.statements.insertDevice.run({ id: deviceId, now, serial: r.certificate.serial });
      if (inserted.changes !== 1) {
        if (r.mode === 'create') return abort('device_exists');
        this.revokeAll(this.statements.activeDeviceCertificates, deviceId, now, 'superseded');
        this.statements.reactivateDevice.run({ id: deviceId, now, serial: r.certificate.serial });
      }
      this.insertCertificate(r.certificate);
      this.insertAudit(r.audit);
      return undefined;
    });

    this.groupCommit = new GroupCommit(db);
    this.renewTransaction = db.transaction((r: Renewal): RenewalConflict | undefined => {
      const deviceId = r.certificate.deviceId;
      if (this.statements.keyOwner.get(r.certificate.spkiSha256, deviceId)) return 'key_reused';
      const updated = this.statements.setCurrentSerial.run({ id: deviceId, now: r.now.getTime(), serial: r.certificate.serial });
      if (updated.changes !== 1) return 'device_not_active';
      this.insertCertificate(r.certificate);
      this.insertAudit(r.audit);
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
  private revokeAll(select: Database.Statement, id: string, now: number, reason: RevocationReason): RevocationResult {
    const serials = (select.all({ id, now }) as { serial: string }[]).map((row) => row.serial);
    if (serials.length === 0) return { revoked: [], seq: this.currentSeq() };
    const seq = this.bumpSeq();
    for (const serial of serials) this.statements.revokeCertificate.run({ serial, now, reason, seq });
    return { revoked: serials, seq };
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

  async createTokens(tokens: readonly NewToken[], audit: AuditEventInput): Promise<void> {
    this.db.transaction(() => {
      for (const token of tokens) {
        this.statements.insertToken.run({
          ...token,
          createdAt: token.createdAt.getTime(),
          expiresAt: token.expiresAt.getTime(),
        });
      }
      this.insertAudit(audit);
    }).immediate();
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

  async certificateStatus(serial: string): Promise<CertificateStatus | undefined> {
    const row = this.statements.certificateStatus.get(serial) as Row | undefined;
    return row && statusFromRow(row);
  }

  async findKeyOwner(spkiSha256: string, exceptDeviceId: string): Promise<string | undefined> {
    const row = this.statements.keyOwner.get(spkiSha256, exceptDeviceId) as { device_id: string } | undefined;
    return row?.device_id;
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

  async recordRenewal(renewal: Renewal): Promise<{ ok: true } | { ok: false; conflict: RenewalConflict }> {
    const conflict = await this.groupCommit.run(() => this.renewTransaction(renewal));
    return conflict ? { ok: false, conflict } : { ok: true };
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

  private cursorPosition(cursor: string | undefined): number {
    if (cursor === undefined) return 0;
    const position = decodeCursor(cursor);
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
      .all({ ...params, after: this.cursorPosition(query.cursor), limit: query.limit + 1 }) as Row[];
    const more = rows.length > query.limit;
    const items = rows.slice(0, query.limit);
    return { items: items.map(fromRow), nextCursor: more ? encodeCursor(items[items.length - 1]!._rowid as number) : null };
  }

  async revokeDevice(
    id: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { device: DeviceRecord }) | undefined> {
    return this.db.transaction(() => {
      const now = audit.at.getTime();
      if (!this.statements.device.get(id)) return undefined;
      const result = this.revokeAll(this.statements.activeDeviceCertificates, id, now, reason);
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

  async revokeOperator(name: string, audit: AuditEventInput): Promise<(RevocationResult & { operator: OperatorRecord }) | undefined> {
    return this.db.transaction(() => {
      if (!this.statements.operator.get(name)) return undefined;
      const now = audit.at.getTime();
      const result = this.revokeAll(this.statements.activeOperatorCertificates, name, now, 'privilegeWithdrawn');
      const changed = this.statements.revokeOperator.run({ id: name, now }).changes === 1;
      if (changed || result.revoked.length) this.insertAudit({ ...audit, detail: { ...audit.detail, serials: result.revoked } });
      return { ...result, operator: operatorFromRow(this.statements.operator.get(name) as Row) };
    }).immediate();
  }

  async appendAudit(event: AuditEventInput): Promise<void> {
    await this.groupCommit.run(() => this.insertAudit(event));
  }

  async listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]> {
    const rows = this.statements.listAudit.all(query.afterId ?? 0, query.since?.getTime() ?? 0, query.limit) as Row[];
    return rows.map(auditFromRow);
  }

  async backup(file: string): Promise<{ readonly bytes: number }> {
    if (existsSync(file)) throw new Error(`${file} already exists`);
    const temp = `${file}.${process.pid}.tmp`;
    try {
      // The backup API copies page by page and restarts on concurrent writes from other
      // connections, so the copy is one consistent snapshot.
      await this.db.backup(temp);
      chmodSync(temp, 0o600); // token hashes and the audit trail are nobody else's business
      const copy = new Database(temp, { readonly: true });
      try {
        const [check] = copy.pragma('integrity_check') as { integrity_check: string }[];
        if (check?.integrity_check !== 'ok') throw new Error(`backup failed its integrity check: ${check?.integrity_check}`);
      } finally {
        copy.close();
      }
      renameSync(temp, file);
      return { bytes: statSync(file).size };
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
  }

  async close(): Promise<void> {
    this.groupCommit.drain();
    if (this.checkpointer) {
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
