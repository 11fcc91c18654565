/** PostgreSQL bootstrap tokens: minting, finding, listing and revoking them. */
import type { AuditEventInput, NewToken, Page, TokenBatchRecord, TokenRecord, TokenStatus } from '../../enrollment/model.js';
import type { TokenStore } from '../store.js';
import type { Postgres } from './connection.js';
import type { Listings } from './listing.js';
import { LookupBatch } from './lookup-batch.js';
import { Params, type Row } from './query.js';
import { TOKEN_COLUMNS } from './columns.js';
import { tokenBatchFromRow, tokenFromRow } from '../rows.js';

/** One statement for the whole batch (up to 10,000 tokens), rows in the batch's order. */
const INSERT_TOKENS = `INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at, may_reprovision)
                       SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::boolean[])`;
/**
 * The tokens of a batch of lookups (lookup-batch.ts), each with the hash it was found by,
 * through a function whose plan is kept (migrations/postgres/0006).
 */
const BY_HASHES = `SELECT hash, ${TOKEN_COLUMNS} FROM imprint_tokens_by_hash($1::bytea[])`;
const ACTIVE_OPERATOR = `SELECT 1 FROM operators WHERE name = $1 AND status = 'active'`;
const REVOKE_TOKEN = 'UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL';
const REVOKE_BY_LABEL = 'UPDATE tokens SET revoked_at = $1 WHERE label = $2 AND used_at IS NULL AND revoked_at IS NULL';
/** Batches minted in the same millisecond in a fixed order (the one SQLite gives them). */
const BATCHES = `SELECT label, min(created_at) AS first_created_at, max(created_at) AS last_created_at,
                   max(expires_at) AS last_expires_at, min(created_by) AS created_by, count(*) AS total,
                   count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1) AS unused,
                   count(*) FILTER (WHERE used_at IS NOT NULL) AS used,
                   count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at <= $1) AS expired,
                   count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NOT NULL) AS revoked
                 FROM tokens GROUP BY label ORDER BY last_created_at DESC, label COLLATE "C" DESC NULLS LAST LIMIT $2`;

/** A batch this large has its table analyzed right away (see createTokens). */
const ANALYZE_AFTER = 1000;

/** Each listed state as a condition on a token row at `now` (a placeholder). */
const STATUS_SQL: Record<TokenStatus, (now: () => string) => string> = {
  unused: (now) => `used_at IS NULL AND revoked_at IS NULL AND expires_at > ${now()}`,
  used: () => 'used_at IS NOT NULL',
  expired: (now) => `used_at IS NULL AND revoked_at IS NULL AND expires_at <= ${now()}`,
  revoked: () => 'used_at IS NULL AND revoked_at IS NOT NULL',
};

/** Bootstrap tokens, stored as their hashes. */
export class PostgresTokens implements TokenStore {
  /** Every enrollment starts with one: they share queries. */
  private readonly byHash: LookupBatch<Row>;

  constructor(
    private readonly db: Postgres,
    private readonly listings: Listings,
  ) {
    this.byHash = new LookupBatch(async (hashes) => {
      const rows = await this.db.rows(BY_HASHES, [hashes]);
      return new Map(rows.map((row) => [(row.hash as Buffer).toString('hex'), row]));
    });
  }

  async createTokens(tokens: readonly NewToken[], audit: AuditEventInput, minter?: string): Promise<{ ok: boolean }> {
    const result = await this.db.write(async (tx) => {
      // An operator revoked while its request was in flight mints nothing.
      if (minter !== undefined && (await tx.rows(ACTIVE_OPERATOR, [minter])).length === 0) return { ok: false };
      const column = <T>(value: (token: NewToken) => T) => tokens.map(value);
      await tx.changes(INSERT_TOKENS, [
        column((t) => t.id),
        column((t) => t.hash),
        column((t) => t.label),
        column((t) => t.deviceId),
        column((t) => t.createdAt.getTime()),
        column((t) => t.createdBy),
        column((t) => t.expiresAt.getTime()),
        column((t) => t.mayReprovision),
      ]);
      tx.appendAudit(audit);
      return { ok: true };
    });
    // Until tokens has statistics (autovacuum takes up to a minute), the planner takes the
    // partial indexes on `used_at IS NULL` for nearly empty and redeems a token by scanning
    // one: with 60,000 fresh tokens each redemption cost ~10 ms under the writer lock,
    // against ~0.6 ms after ANALYZE. A large batch is when that starts to matter.
    if (result.ok && tokens.length >= ANALYZE_AFTER) await this.db.analyze('tokens');
    return result;
  }

  async findTokenByHash(hash: Buffer): Promise<TokenRecord | undefined> {
    const row = await this.byHash.get(hash);
    return row && tokenFromRow(row);
  }

  async listTokens(query: {
    status?: TokenStatus | undefined;
    label?: string | undefined;
    limit: number;
    cursor?: string | undefined;
    now: Date;
  }): Promise<Page<TokenRecord>> {
    const params = new Params();
    const where: string[] = [];
    if (query.status) where.push(STATUS_SQL[query.status](() => params.add(query.now.getTime())));
    if (query.label !== undefined) where.push(`label = ${params.add(query.label)}`);
    return this.listings.page('tokens', TOKEN_COLUMNS, where, params, query, tokenFromRow);
  }

  async revokeToken(id: string, audit: AuditEventInput): Promise<TokenRecord | undefined> {
    return this.db.write(async (tx) => {
      const changed = (await tx.changes(REVOKE_TOKEN, [audit.at.getTime(), id])) === 1;
      const [row] = await tx.rows(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = $1`, [id]);
      if (changed) tx.appendAudit(audit);
      return row && tokenFromRow(row);
    });
  }

  async revokeTokensByLabel(label: string, audit: AuditEventInput): Promise<number> {
    return this.db.write(async (tx) => {
      const revoked = await tx.changes(REVOKE_BY_LABEL, [audit.at.getTime(), label]);
      tx.appendAudit({ ...audit, detail: { ...audit.detail, label, revoked } });
      return revoked;
    });
  }

  async listTokenBatches(query: { now: Date; limit: number }): Promise<TokenBatchRecord[]> {
    const rows = await this.db.rows(BATCHES, [query.now.getTime(), query.limit]);
    return rows.map(tokenBatchFromRow);
  }
}
