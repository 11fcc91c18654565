/**
 * `imprint migrate-store`: moves a fleet from a SQLite file into an empty PostgreSQL
 * database. Storage only: it knows both schemas and no policy. Every row keeps every column
 * as stored (token hashes, audit ids and hashes, revocation sequence numbers, CRL numbers),
 * so the audit chain verifies on the target and CRL numbers go on from where they were.
 *
 * The source is read in one read transaction: a consistent snapshot even while a server
 * writes the file (what it writes after the snapshot is not moved). The target is written
 * in one transaction holding the writer lock (postgres/locks.ts): an instance started on it
 * meanwhile sees nothing or the whole fleet, and two moves into one database cannot both
 * find it empty.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { GENESIS_HASH } from './audit-hash.js';
import { CURSOR_KEY_SETTING } from './cursor.js';
import { withoutPassword } from './database-url.js';
import { loadMigrations } from './migrate.js';
import { connectClient } from './postgres/connection.js';
import { LOCK, LOCK_NAMESPACE } from './postgres/locks.js';
import { migrate } from './postgres/migrate.js';
import { PostgresStore } from './postgres-store.js';
import type { AuditStore } from './store.js';

/** Rows per INSERT: 500 certificates of 16 columns stay far below PostgreSQL's 65,535 parameters. */
const BATCH_ROWS = 500;

/** A table copied row for row. */
interface CopiedTable {
  readonly name: string;
  /**
   * Its columns at the schema version copied, named here rather than read from the file: a
   * crafted file's column names would otherwise become SQL on both sides.
   */
  readonly columns: readonly string[];
  /** The rows that move (SQL both dialects read alike); all when absent. */
  readonly moves?: string;
  /** An identity column whose values are copied; its sequence then goes on after them. */
  readonly identity?: string;
}

/** In an order that satisfies the foreign keys (certificates after devices). */
const COPIED: readonly CopiedTable[] = [
  // The target keeps the cursor key its migration made: cursors the old server gave out end with the move.
  { name: 'settings', columns: ['key', 'value'], moves: `key <> '${CURSOR_KEY_SETTING}'` },
  { name: 'operators', columns: ['name', 'role', 'status', 'created_at', 'created_by', 'revoked_at'] },
  {
    name: 'devices',
    columns: ['id', 'status', 'enrolled_at', 'updated_at', 'current_serial', 'revoked_at', 'revocation_reason', 'retiring_serial', 'retire_at', 'enrolled_via', 'enrollment_label'],
  },
  {
    name: 'tokens',
    columns: ['id', 'hash', 'label', 'device_id', 'created_at', 'created_by', 'expires_at', 'used_at', 'used_by_device', 'csr_sha256', 'serial', 'revoked_at', 'may_reprovision'],
  },
  {
    name: 'certificates',
    columns: [
      'serial', 'kind', 'subject', 'device_id', 'spki_sha256', 'not_before', 'not_after', 'issued_at', 'status', 'revoked_at',
      'revocation_reason', 'token_id', 'der', 'revocation_seq', 'renewed_from', 'csr_sha256',
    ],
  },
  { name: 'compromised_keys', columns: ['spki_sha256', 'marked_at', 'serial'] },
  { name: 'server_certificates', columns: ['serial', 'subject', 'not_before', 'not_after', 'issued_at', 'der'] },
  { name: 'published_crls', columns: ['scope', 'revocation_seq', 'crl_number', 'built_at', 'this_update', 'next_update', 'signature'] },
  { name: 'audit_events', columns: ['id', 'at', 'actor', 'action', 'outcome', 'source', 'token_id', 'device_id', 'serial', 'detail', 'prev_hash', 'hash'], identity: 'id' },
];

/**
 * Not copied row for row: revocation_state is the one row of counters the target's
 * migration made, set to the source's values; crl_build_claims names CRL builds in progress
 * in processes of the old store.
 */
const NOT_COPIED = ['revocation_state', 'crl_build_claims'];

const countSql = (table: CopiedTable): string => `SELECT count(*) AS n FROM ${table.name}${table.moves ? ` WHERE ${table.moves}` : ''}`;

/** Walks the audit chain of a store (AuditService.verify: the check `imprint audit verify` runs). */
export type AuditCheck = (store: AuditStore) => Promise<{
  readonly ok: boolean;
  readonly checked: number;
  readonly head: string;
  readonly problem?: { readonly id: number; readonly reason: string };
}>;

/** What was moved, as verified on the target after the commit. */
export interface MovedFleet {
  readonly from: string;
  /** The target's URL without its password. */
  readonly to: string;
  /** Rows per table, equal on both sides (settings without the cursor key). */
  readonly tables: Readonly<Record<string, number>>;
  readonly revocationSeq: number;
  readonly crlNumber: number;
  readonly audit: { readonly verified: number; readonly head: string };
}

/**
 * Copies the SQLite fleet at `from` into the PostgreSQL database at `to` (migrated first,
 * refused unless empty), then checks the copy: row counts per table, the revocation
 * counters, and the audit chain walked end to end on the target by `checkAudit`.
 */
export async function moveFleet(from: string, to: string, checkAudit: AuditCheck): Promise<MovedFleet> {
  const { tables, counters } = await copyAndCount(from, to);
  const store = await PostgresStore.open(to);
  try {
    const chain = await checkAudit(store);
    if (!chain.ok) throw copyMismatch(`its audit chain breaks at event ${chain.problem?.id}: ${chain.problem?.reason}`);
    if (chain.checked !== tables.audit_events || chain.head !== counters.head) {
      throw copyMismatch(`its audit chain ends at ${chain.head} after ${chain.checked} events, the source's at ${counters.head} after ${tables.audit_events}`);
    }
    return {
      from,
      to: withoutPassword(to),
      tables,
      revocationSeq: counters.seq,
      crlNumber: counters.crlNumber,
      audit: { verified: chain.checked, head: chain.head },
    };
  } finally {
    await store.close();
  }
}

/** The source's revocation counters and the head of its audit chain. */
interface Counters {
  readonly seq: number;
  readonly crlNumber: number;
  readonly head: string;
}

/** Copies the fleet, then compares the committed target with the snapshot: rows per table and the revocation counters. */
async function copyAndCount(from: string, to: string): Promise<{ tables: Record<string, number>; counters: Counters }> {
  const source = SqliteSource.open(from);
  try {
    const client = await connect(to);
    try {
      await migrate(client);
      const counters = await copyFleet(source, client, withoutPassword(to));
      const tables: Record<string, number> = {};
      for (const table of COPIED) {
        const [expected, found] = [source.count(table), await count(client, table)];
        if (found !== expected) throw copyMismatch(`${table.name} holds ${found} rows on the target, ${expected} in ${from}`);
        tables[table.name] = found;
      }
      const [state] = (await client.query<{ seq: number; crl_number: number }>('SELECT seq, crl_number FROM revocation_state WHERE id = 1')).rows;
      if (state?.seq !== counters.seq || state.crl_number !== counters.crlNumber) throw copyMismatch('the revocation counters differ');
      return { tables, counters };
    } finally {
      await client.end();
    }
  } finally {
    source.close();
  }
}

/** The committed copy does not match its source: the target keeps it, for the operator to look at and drop. */
const copyMismatch = (what: string): Error =>
  new Error(`the copy does not match its source: ${what}; drop the target database before moving again`);

/** One transaction under the writer lock: refuses a target holding any fleet row, then copies every table. */
async function copyFleet(source: SqliteSource, client: pg.Client, target: string): Promise<Counters> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK.writer]);
    const held: string[] = [];
    for (const table of COPIED) {
      const rows = await count(client, table);
      if (rows > 0) held.push(`${table.name} has ${rows} rows`);
    }
    if (held.length) throw new Error(`refusing ${target}: it already holds a fleet (${held.join(', ')}); migrate-store fills an empty database only`);
    for (const table of COPIED) await copyTable(source, client, table);
    const counters = source.counters();
    await client.query('UPDATE revocation_state SET seq = $1, crl_number = $2 WHERE id = 1', [counters.seq, counters.crlNumber]);
    await client.query('COMMIT');
    return counters;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** Copies one table in rowid order (so positions on the target follow the source's order), a batch per INSERT. */
async function copyTable(source: SqliteSource, client: pg.Client, table: CopiedTable): Promise<void> {
  const columns = table.columns;
  const overriding = table.identity ? ' OVERRIDING SYSTEM VALUE' : '';
  for (let after: bigint = 0n; ; ) {
    const batch = source.batch(table, columns, after);
    if (batch.length === 0) break;
    const placeholders = batch.map((_, row) => `(${columns.map((_, column) => `$${row * columns.length + column + 1}`).join(', ')})`);
    await client.query(
      `INSERT INTO ${table.name} (${columns.join(', ')})${overriding} VALUES ${placeholders.join(', ')}`,
      batch.flatMap((row) => row.slice(1)),
    );
    after = batch[batch.length - 1]![0] as bigint;
    if (batch.length < BATCH_ROWS) break;
  }
  if (table.identity) {
    // New rows on the target take ids after the copied ones (setval ignores the NULL max of an empty table).
    await client.query(`SELECT setval(pg_get_serial_sequence($1, $2), max(${table.identity})) FROM ${table.name}`, [table.name, table.identity]);
  }
}

async function count(client: pg.Client, table: CopiedTable): Promise<number> {
  return (await client.query<{ n: number }>(countSql(table))).rows[0]!.n;
}

/** A session on the target; a failure to reach it in one line that names it without its password. */
async function connect(url: string): Promise<pg.Client> {
  try {
    return await connectClient(url);
  } catch (error) {
    // Node reports a host with several addresses that all refused as an AggregateError without a message.
    const { message, code, errors } = error as { message?: string; code?: string; errors?: { message?: string }[] };
    throw new Error(`cannot connect to PostgreSQL at ${withoutPassword(url)}: ${message || errors?.[0]?.message || code || String(error)}`);
  }
}

/**
 * The SQLite file, read-only, inside one read transaction: every read sees the snapshot its
 * first read took. Integers are read as BigInt, so every value reaches PostgreSQL exactly.
 */
class SqliteSource {
  private constructor(private readonly db: Database.Database) {}

  /** Opens `path` and checks it is an imprint database of the schema this code copies. */
  static open(path: string): SqliteSource {
    if (!existsSync(path)) throw new Error(`${path}: no such file`);
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      // Deferred: the snapshot is taken by the first read, checkSchema's.
      db.exec('BEGIN');
      checkSchema(db, path);
      db.defaultSafeIntegers(true);
      const source = new SqliteSource(db);
      for (const table of COPIED) source.checkColumns(table);
      return source;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Refuses a table whose columns are not exactly the ones this code copies. */
  checkColumns(table: CopiedTable): void {
    const found = (this.db.pragma(`table_info(${table.name})`) as { name: string }[]).map((column) => column.name);
    if (found.length !== table.columns.length || found.some((name, i) => name !== table.columns[i])) {
      throw new Error(`the source's ${table.name} table does not have the columns of an imprint database: refusing to copy it`);
    }
  }

  /** Up to BATCH_ROWS rows after rowid `after`, each as [rowid, ...columns]. */
  batch(table: CopiedTable, columns: readonly string[], after: bigint): unknown[][] {
    const where = ['rowid > ?', ...(table.moves ? [table.moves] : [])].join(' AND ');
    return this.db
      .prepare(`SELECT rowid, ${columns.join(', ')} FROM ${table.name} WHERE ${where} ORDER BY rowid LIMIT ${BATCH_ROWS}`)
      .raw(true)
      .all(after) as unknown[][];
  }

  count(table: CopiedTable): number {
    return Number((this.db.prepare(countSql(table)).get() as { n: bigint }).n);
  }

  counters(): Counters {
    const state = this.db.prepare('SELECT seq, crl_number FROM revocation_state WHERE id = 1').get() as { seq: bigint; crl_number: bigint };
    const last = this.db.prepare('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1').get() as { hash: string } | undefined;
    return { seq: Number(state.seq), crlNumber: Number(state.crl_number), head: last?.hash ?? GENESIS_HASH };
  }

  /** Ends the read transaction and closes the file. */
  close(): void {
    this.db.close();
  }
}

/** Refuses a file that is not an imprint database, or not of the latest schema this code knows. */
function checkSchema(db: Database.Database, path: string): void {
  let version: number;
  let tables: string[];
  try {
    version = db.pragma('user_version', { simple: true }) as number;
    tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'`).pluck().all() as string[];
  } catch (error) {
    if ((error as { code?: unknown }).code === 'SQLITE_NOTADB') throw new Error(`${path} is not an imprint database (not a SQLite file)`);
    throw error;
  }
  if (version === 0 || !tables.includes('audit_events')) throw new Error(`${path} is not an imprint database`);
  const latest = loadMigrations().length;
  if (version > latest) throw new Error(`${path} has schema version ${version}, newer than this imprint (${latest}); upgrade imprint`);
  if (version < latest) {
    throw new Error(`${path} has schema version ${version}, migrate-store copies version ${latest}: run imprint migrate --data ${dirname(path)} first`);
  }
  // A table added by hand, or by a migration this module was not taught: refuse rather than leave it behind.
  const unknown = tables.filter((name) => !COPIED.some((table) => table.name === name) && !NOT_COPIED.includes(name));
  if (unknown.length) throw new Error(`${path} holds tables migrate-store does not copy: ${unknown.join(', ')}`);
}
