/**
 * One write transaction on one connection, holding the writer lock (locks.ts): its
 * statements, the audit events it appends (a hash chain), and savepoints for group commit.
 */
import type pg from 'pg';
import type { AuditEventInput } from '../../enrollment/model.js';
import { auditFields, auditHash, GENESIS_HASH } from '../audit-hash.js';
import { storeUnavailable } from '../failures.js';
import { LOCK, LOCK_NAMESPACE } from './locks.js';
import { statement, type Queryable, type Row } from './query.js';

/**
 * Opens the transaction, takes the writer lock and reads the chain's last hash, in one
 * round trip (migrations/postgres/0005: imprint_writer_head); the hash is read after the
 * lock is granted, so it sees every event committed before, and none can be appended but
 * ours until we commit. NULL before the first event.
 */
const BEGIN = `BEGIN; SELECT imprint_writer_head(${LOCK_NAMESPACE}, ${LOCK.writer}) AS hash`;

/**
 * A transaction's events in one statement, in the order they were appended: ids are taken
 * as the sorted rows are inserted, so id order is chain order.
 */
const INSERT_AUDIT = `INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
                      SELECT at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash
                      FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                  $9::text[], $10::text[], $11::text[]) WITH ORDINALITY
                        AS e(at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash, n)
                      ORDER BY n`;

/** An audit event's columns before it is chained: those of audit_events by name, but the hashes. */
export interface AuditColumns {
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly outcome: string;
  readonly source: string | null;
  readonly token_id: string | null;
  readonly device_id: string | null;
  readonly serial: string | null;
  readonly detail: string | null;
}

/** An audit event as inserted. */
interface AuditRow extends AuditColumns {
  readonly prev_hash: string;
  readonly hash: string;
}

/** The columns of INSERT_AUDIT in order. */
const AUDIT_ROW_COLUMNS = ['at', 'actor', 'action', 'outcome', 'source', 'token_id', 'device_id', 'serial', 'detail', 'prev_hash', 'hash'] as const;

/** `event` as its columns. */
export function auditColumns(event: AuditEventInput): AuditColumns {
  const fields = auditFields(event);
  return {
    at: event.at.getTime(),
    actor: fields.actor,
    action: fields.action,
    outcome: fields.outcome,
    source: fields.source,
    token_id: fields.tokenId,
    device_id: fields.deviceId,
    serial: fields.serial,
    detail: event.detail ? JSON.stringify(event.detail) : null,
  };
}

/** What one write in a group-committed batch came to. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** A write transaction; Postgres.write opens it, commits it and rolls it back. */
export class Transaction implements Queryable {
  /**
   * Events appended and not yet inserted: nothing reads the audit log inside a write, so
   * they go in together just before COMMIT, one statement instead of one per write.
   */
  private readonly appended: AuditRow[] = [];
  /** Whether a revocation sequence number was taken: this process hears of it at commit (Postgres.write). */
  revoking = false;
  /** Whether a savepoint was set (attempt), to be released before the next one. */
  private savepointSet = false;

  private constructor(
    private readonly client: pg.PoolClient,
    /** The hash of the last event in the chain, ours included. */
    private head: string,
  ) {}

  /** Begins a transaction on `client` under the writer lock. */
  static async begin(client: pg.PoolClient): Promise<Transaction> {
    const results = (await client.query(BEGIN)) as unknown as pg.QueryResult<{ hash: string | null }>[];
    return new Transaction(client, results[1]?.rows[0]?.hash ?? GENESIS_HASH);
  }

  async rows<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    return (await this.client.query(statement(sql, params))).rows as R[];
  }

  async changes(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.client.query(statement(sql, params))).rowCount ?? 0;
  }

  /** Appends `event` to the audit hash chain (inserted at commit). */
  appendAudit(event: AuditEventInput): void {
    const row = { ...auditColumns(event), prev_hash: this.head, hash: auditHash(this.head, event) };
    this.appended.push(row);
    this.head = row.hash;
  }

  /** The hash of the chain's last event, ours included: what a statement that chains events itself goes on from (after insertAppended). */
  get chainHead(): string {
    return this.head;
  }

  /** Goes on from `hash`, the last event a statement of the caller's chained and inserted. */
  chainedTo(hash: string): void {
    this.head = hash;
  }

  /** Inserts the events appended so far, so that events inserted next follow them. */
  async insertAppended(): Promise<void> {
    if (this.appended.length === 0) return;
    await this.changes(
      INSERT_AUDIT,
      AUDIT_ROW_COLUMNS.map((column) => this.appended.map((row) => row[column])),
    );
    this.appended.length = 0;
  }

  /** Inserts the appended events and commits. */
  async commit(): Promise<void> {
    await this.insertAppended();
    await this.client.query('COMMIT');
  }

  /**
   * Runs `write` in a savepoint: when it throws, what it wrote is rolled back and the
   * error is its outcome, while the transaction goes on. When the connection or the
   * database fails, the whole transaction has failed: that throws.
   */
  async attempt<T>(write: (tx: Transaction) => Promise<T>): Promise<Outcome<T>> {
    const head = this.head;
    const appended = this.appended.length;
    // The previous write's savepoint is released in the same round trip.
    await this.client.query(this.savepointSet ? 'RELEASE SAVEPOINT write; SAVEPOINT write' : 'SAVEPOINT write');
    this.savepointSet = true;
    try {
      return { ok: true, value: await write(this) };
    } catch (error) {
      if (storeUnavailable(error)) throw error;
      this.head = head;
      this.appended.length = appended;
      await this.client.query('ROLLBACK TO SAVEPOINT write');
      return { ok: false, error };
    }
  }
}
