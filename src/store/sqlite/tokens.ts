/** SQLite bootstrap tokens: only their hashes are stored. */
import type Database from 'better-sqlite3';
import type { AuditEventInput, NewToken, Page, TokenBatchRecord, TokenRecord, TokenStatus } from '../../enrollment/model.js';
import type { TokenStore } from '../store.js';
import type { Listings } from './listings.js';
import { tokenBatchFromRow, tokenFromRow, type Row } from '../rows.js';
import type { Writer } from './writer.js';

const TOKEN_STATUS_SQL: Record<TokenStatus, string> = {
  unused: 'used_at IS NULL AND revoked_at IS NULL AND expires_at > @now',
  used: 'used_at IS NOT NULL',
  expired: 'used_at IS NULL AND revoked_at IS NULL AND expires_at <= @now',
  revoked: 'used_at IS NULL AND revoked_at IS NOT NULL',
};

/** The tokens table. */
export class SqliteTokens implements TokenStore {
  private readonly statements;

  constructor(
    private readonly db: Database.Database,
    private readonly writer: Writer,
    private readonly listings: Listings,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      insertToken: s(`INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at, may_reprovision)
                      VALUES (@id, @hash, @label, @deviceId, @createdAt, @createdBy, @expiresAt, @mayReprovision)`),
      tokenByHash: s('SELECT * FROM tokens WHERE hash = ?'),
      tokenById: s('SELECT * FROM tokens WHERE id = ?'),
      revokeToken: s('UPDATE tokens SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL'),
      revokeTokensByLabel: s(`UPDATE tokens SET revoked_at = ?
                              WHERE label = ? AND used_at IS NULL AND revoked_at IS NULL`),
      activeOperator: s(`SELECT 1 FROM operators WHERE name = ? AND status = 'active'`),
    };
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
      this.writer.insertAudit(audit);
      return { ok: true };
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
    return this.listings.page('tokens', where, query, tokenFromRow, { now: query.now.getTime(), label: query.label ?? null });
  }

  async revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    return this.db.transaction(() => {
      const changed = this.statements.revokeToken.run(audit.at.getTime(), id).changes === 1;
      const row = this.statements.tokenById.get(id) as Row | undefined;
      if (changed) this.writer.insertAudit(audit);
      return row && tokenFromRow(row);
    }).immediate();
  }

  async revokeTokensByLabel(label: string, audit: AuditEventInput): Promise<number> {
    return this.db.transaction(() => {
      const { changes } = this.statements.revokeTokensByLabel.run(audit.at.getTime(), label);
      this.writer.insertAudit({ ...audit, detail: { ...audit.detail, label, revoked: changes } });
      return changes;
    }).immediate();
  }

  /** The console's statement, prepared on first use. */
  private batches: Database.Statement | undefined;

  async listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]> {
    this.batches ??= this.db.prepare(`SELECT label, min(created_at) AS first_created_at, max(created_at) AS last_created_at,
                                        max(expires_at) AS last_expires_at, min(created_by) AS created_by, count(*) AS total,
                                        sum(used_at IS NULL AND revoked_at IS NULL AND expires_at > @now) AS unused,
                                        sum(used_at IS NOT NULL) AS used,
                                        sum(used_at IS NULL AND revoked_at IS NULL AND expires_at <= @now) AS expired,
                                        sum(used_at IS NULL AND revoked_at IS NOT NULL) AS revoked
                                      FROM tokens GROUP BY label ORDER BY last_created_at DESC LIMIT @limit`);
    const rows = this.batches.all({ now: query.now.getTime(), limit: query.limit }) as Row[];
    return rows.map(tokenBatchFromRow);
  }
}
