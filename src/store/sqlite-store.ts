/**
 * The embedded store: one SQLite file. Every domain operation is one synchronous
 * better-sqlite3 transaction (BEGIN IMMEDIATE when it writes, so the CLI and the server
 * serialise cleanly); prepared statements are made once.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { openDatabase, type Durability } from './database.js';
import { migrate } from './migrate.js';
import type {
  AuditEvent,
  AuditEventInput,
  CertificateRecord,
  DeviceRecord,
  NewCertificate,
  NewToken,
  Page,
  Redemption,
  RedemptionConflict,
  Renewal,
  RenewalConflict,
  Store,
  TokenRecord,
  TokenStatus,
} from './store.js';

const GENESIS_HASH = '0'.repeat(64);

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
    status: row.status as CertificateRecord['status'],
    revokedAt: date(row.revoked_at),
    revocationReason: text(row.revocation_reason),
    tokenId: text(row.token_id),
    der: row.der as Buffer,
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

/** The canonical bytes an audit hash covers: the previous hash and every field of the event. */
export function auditHash(prevHash: string, event: AuditEventInput): string {
  const fields = [
    event.at.getTime(),
    event.actor,
    event.action,
    event.outcome,
    event.source ?? null,
    event.tokenId ?? null,
    event.deviceId ?? null,
    event.serial ?? null,
    event.detail ? JSON.stringify(event.detail) : null,
  ];
  return createHash('sha256').update(prevHash).update('\n').update(JSON.stringify(fields)).digest('hex');
}

const encodeCursor = (rowid: number): string => Buffer.from(`r${rowid}`).toString('base64url');

/** Decodes a listing cursor; undefined when it is not one of ours. */
export function decodeCursor(cursor: string): number | undefined {
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
      supersede: s(`UPDATE certificates SET status = 'revoked', revoked_at = @now, revocation_reason = 'superseded'
                    WHERE device_id = @id AND status = 'active' AND not_after > @now`),
      certificate: s('SELECT * FROM certificates WHERE serial = ?'),
      keyOwner: s(`SELECT device_id FROM certificates WHERE spki_sha256 = ? AND device_id IS NOT NULL AND device_id <> ? LIMIT 1`),
      insertCertificate: s(`INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                              issued_at, status, token_id, der)
                            VALUES (@serial, @kind, @subject, @deviceId, @spkiSha256, @notBefore, @notAfter,
                              @issuedAt, 'active', @tokenId, @der)`),
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
        this.statements.supersede.run({ id: deviceId, now });
        this.statements.reactivateDevice.run({ id: deviceId, now, serial: r.certificate.serial });
      }
      this.insertCertificate(r.certificate);
      this.insertAudit(r.audit);
      return undefined;
    });

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
  static open(path: string, durability: Durability = 'full'): SqliteStore {
    const db = openDatabase(path, durability);
    migrate(db);
    return new SqliteStore(db);
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
      at: event.at.getTime(),
      actor: event.actor,
      action: event.action,
      outcome: event.outcome,
      source: event.source ?? null,
      tokenId: event.tokenId ?? null,
      deviceId: event.deviceId ?? null,
      serial: event.serial ?? null,
      detail: event.detail ? JSON.stringify(event.detail) : null,
      prevHash,
      hash: auditHash(prevHash, event),
    });
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
    const where = ['rowid > @after'];
    if (query.status) where.push(TOKEN_STATUS_SQL[query.status]);
    if (query.label !== undefined) where.push('label = @label');
    const rows = this.db
      .prepare(`SELECT rowid AS _rowid, * FROM tokens WHERE ${where.join(' AND ')} ORDER BY rowid LIMIT @limit`)
      .all({
        after: query.cursor === undefined ? 0 : decodeCursor(query.cursor) ?? 0,
        now: query.now.getTime(),
        label: query.label ?? null,
        limit: query.limit + 1,
      }) as Row[];
    const more = rows.length > query.limit;
    const items = rows.slice(0, query.limit);
    return {
      items: items.map(tokenFromRow),
      nextCursor: more ? encodeCursor(items[items.length - 1]!._rowid as number) : null,
    };
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

  async findKeyOwner(spkiSha256: string, exceptDeviceId: string): Promise<string | undefined> {
    const row = this.statements.keyOwner.get(spkiSha256, exceptDeviceId) as { device_id: string } | undefined;
    return row?.device_id;
  }

  async redeemTokenAndRecordCertificate(
    redemption: Redemption,
  ): Promise<{ ok: true } | { ok: false; conflict: RedemptionConflict }> {
    try {
      const conflict = this.redeemTransaction.immediate(redemption);
      return conflict ? { ok: false, conflict } : { ok: true };
    } catch (error) {
      if (error instanceof Abort) return { ok: false, conflict: error.conflict as RedemptionConflict };
      throw error;
    }
  }

  async recordRenewal(renewal: Renewal): Promise<{ ok: true } | { ok: false; conflict: RenewalConflict }> {
    const conflict = this.renewTransaction.immediate(renewal);
    return conflict ? { ok: false, conflict } : { ok: true };
  }

  async appendAudit(event: AuditEventInput): Promise<void> {
    this.db.transaction(() => this.insertAudit(event)).immediate();
  }

  async listAudit(query: { since?: Date | undefined; limit: number }): Promise<AuditEvent[]> {
    const rows = this.db
      .prepare('SELECT * FROM audit_events WHERE at >= ? ORDER BY id LIMIT ?')
      .all(query.since?.getTime() ?? 0, query.limit) as Row[];
    return rows.map(auditFromRow);
  }

  async close(): Promise<void> {
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
