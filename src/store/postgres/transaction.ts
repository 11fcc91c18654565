/**
 * One write transaction on one connection, holding the writer lock (locks.ts): its
 * statements, the head of the audit hash chain, and savepoints for group commit.
 */
import type pg from 'pg';
import type { AuditEventInput } from '../../enrollment/model.js';
import { auditFields, auditHash, GENESIS_HASH } from '../audit-hash.js';
import { storeUnavailable } from '../failures.js';
import { LOCK, LOCK_NAMESPACE } from './locks.js';
import { statement, type Queryable, type Row } from './query.js';

/**
 * Opens the transaction, takes the writer lock and reads the chain's last hash, in one
 * round trip; the SELECT runs after the lock is granted, so it sees every event committed
 * before, and none can be appended but ours until we commit.
 */
const BEGIN = `BEGIN; SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}, ${LOCK.writer}); SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`;

const INSERT_AUDIT = `INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`;

/** What one write in a group-committed batch came to. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** A write transaction; Postgres.write opens, commits and rolls it back. */
export class Transaction implements Queryable {
  private constructor(
    private readonly client: pg.PoolClient,
    /** The hash of the last event in the chain, ours included. */
    private head: string,
  ) {}

  /** Begins a transaction on `client` under the writer lock. */
  static async begin(client: pg.PoolClient): Promise<Transaction> {
    const results = (await client.query(BEGIN)) as unknown as pg.QueryResult<{ hash: string }>[];
    return new Transaction(client, results[2]?.rows[0]?.hash ?? GENESIS_HASH);
  }

  async rows<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    return (await this.client.query(statement(sql, params))).rows as R[];
  }

  async changes(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.client.query(statement(sql, params))).rowCount ?? 0;
  }

  /** Appends `event` to the audit hash chain. */
  async appendAudit(event: AuditEventInput): Promise<void> {
    const hash = auditHash(this.head, event);
    const fields = auditFields(event);
    await this.changes(INSERT_AUDIT, [
      event.at.getTime(),
      fields.actor,
      fields.action,
      fields.outcome,
      fields.source,
      fields.tokenId,
      fields.deviceId,
      fields.serial,
      event.detail ? JSON.stringify(event.detail) : null,
      this.head,
      hash,
    ]);
    this.head = hash;
  }

  /**
   * Runs `write` in a savepoint: when it throws, what it wrote is rolled back and the
   * error is its outcome, while the transaction goes on. When the connection or the
   * database fails, the whole transaction has failed: that throws.
   */
  async attempt<T>(write: (tx: Transaction) => Promise<T>): Promise<Outcome<T>> {
    const head = this.head;
    await this.client.query('SAVEPOINT write');
    try {
      const value = await write(this);
      await this.client.query('RELEASE SAVEPOINT write');
      return { ok: true, value };
    } catch (error) {
      if (storeUnavailable(error)) throw error;
      this.head = head;
      await this.client.query('ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write');
      return { ok: false, error };
    }
  }
}
