/**
 * The store behind a test's data directory, and a look at it from a second connection, as
 * an auditor (or an attacker with access to the database) would.
 *
 * One switch picks the store of a whole test run: IMPRINT_TEST_STORE=postgres (vitest's
 * `postgres` project) keeps each data directory's fleet in a fresh PostgreSQL database of
 * its own, remembered here by directory, so that the test servers, the CLI and the checks
 * below all reach the same one; otherwise it is SQLite's file in the directory.
 */
import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import pg from 'pg';
import { LOCK, LOCK_NAMESPACE } from '../../src/store/postgres/locks.js';
import { freshDatabaseUrl } from './postgres.js';

/** The store this test run's servers use. */
export const testStore: 'sqlite' | 'postgres' = process.env.IMPRINT_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

/** Data directory -> its database, while being made (two asks at once share one) and once made. */
const making = new Map<string, Promise<string>>();
const made = new Map<string, string>();

/** The PostgreSQL database of a data directory, a fresh one on first ask; undefined on SQLite. */
export function databaseUrlFor(dataDir: string): Promise<string | undefined> {
  if (testStore === 'sqlite') return Promise.resolve(undefined);
  const key = resolve(dataDir);
  let url = making.get(key);
  if (url === undefined) {
    url = freshDatabaseUrl().then((fresh) => (made.set(key, fresh), fresh));
    making.set(key, url);
  }
  return url;
}

/** `--database URL` for a process on a data directory (none on SQLite). */
export async function databaseArgs(dataDir: string): Promise<string[]> {
  const url = await databaseUrlFor(dataDir);
  return url === undefined ? [] : ['--database', url];
}

type Statement = { readonly sql: string; readonly params: readonly unknown[] };

/**
 * The checks below are synchronous, as better-sqlite3 is, and many tests call them inline.
 * The pg driver is asynchronous: it runs on a thread of its own while this one waits on a
 * shared flag (Atomics.wait), then takes the answer off the port.
 */
const QUERY_THREAD = `
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pg);
// BIGINT (times, counts) as numbers, as SQLite gives them.
const types = { getTypeParser: (oid, format) => (oid === 20 && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format)) };
workerData.port.on('message', async ({ flag, url, statements }) => {
  const client = new pg.Client({ connectionString: url, types });
  let reply;
  try {
    await client.connect();
    const results = [];
    for (const { sql, params } of statements) results.push((await client.query(sql, params)).rows);
    reply = { results };
  } catch (error) {
    reply = { error: String(error && error.message) };
  }
  await client.end().catch(() => {});
  workerData.port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
`;
let queryPort: MessagePort | undefined;

/** Runs statements in order on one PostgreSQL session and returns each one's rows. */
function onPostgres(url: string, statements: Statement[]): Record<string, unknown>[][] {
  if (queryPort === undefined) {
    const { port1, port2 } = new MessageChannel();
    const pgPath = createRequire(import.meta.url).resolve('pg');
    new Worker(QUERY_THREAD, { eval: true, workerData: { port: port2, pg: pgPath }, transferList: [port2] }).unref();
    queryPort = port1;
  }
  const flag = new Int32Array(new SharedArrayBuffer(4));
  queryPort.postMessage({ flag, url, statements });
  if (Atomics.wait(flag, 0, 0, 30_000) === 'timed-out') throw new Error('no answer from PostgreSQL within 30 s');
  const reply = receiveMessageOnPort(queryPort)!.message as { results?: Record<string, unknown>[][]; error?: string };
  if (reply.error !== undefined) throw new Error(`${reply.error}\n  in: ${statements.map((s) => s.sql).join('; ')}`);
  // Buffers cross the thread as plain Uint8Arrays.
  return reply.results!.map((rows) =>
    rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v]))),
  );
}

/** The database a data directory's server was started on (PostgreSQL only). */
function startedDatabase(dataDir: string): string {
  const url = made.get(resolve(dataDir));
  if (url === undefined) throw new Error(`no PostgreSQL database for ${dataDir}: start its server first`);
  return url;
}

/** Runs statements (SQLite's `?` placeholders) against a data directory's store; each one's rows. */
function run(dataDir: string, readonly: boolean, statements: { sql: string; params?: readonly unknown[] }[]): Record<string, unknown>[][] {
  if (testStore === 'postgres') {
    const numbered = statements.map(({ sql, params = [] }) => {
      let n = 0;
      return { sql: sql.replace(/\?/g, () => `$${++n}`), params };
    });
    return onPostgres(startedDatabase(dataDir), numbered);
  }
  const db = new Database(join(dataDir, 'imprint.db'), { readonly });
  try {
    return statements.map(({ sql, params = [] }) => {
      const prepared = db.prepare(sql);
      if (prepared.reader) return prepared.all(...params) as Record<string, unknown>[];
      prepared.run(...params);
      return [];
    });
  } finally {
    db.close();
  }
}

/** Everything but the audit log, to assert that a refusal changed nothing. */
export function snapshot(dataDir: string): { state: string; auditEvents: number } {
  const [devices, certificates, tokens, counted] = run(dataDir, true, [
    { sql: 'SELECT * FROM devices ORDER BY id' },
    { sql: 'SELECT serial, status, device_id, revoked_at FROM certificates ORDER BY serial' },
    { sql: 'SELECT id, used_at, revoked_at, csr_sha256, serial FROM tokens ORDER BY id' },
    { sql: 'SELECT count(*) AS n FROM audit_events' },
  ]);
  return { state: JSON.stringify({ devices, certificates, tokens }), auditEvents: counted![0]!.n as number };
}

/** Runs one read-only query against a data directory's store. */
export function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  return run(dataDir, true, [{ sql, params }])[0] as T[];
}

/** Writes the store behind imprint's back, as an attacker with access to the database would. */
export function execute(dataDir: string, sql: string, ...params: unknown[]): void {
  run(dataDir, false, [{ sql, params }]);
}

/**
 * Takes the store's write lock from a second connection, as another writer stuck in its
 * transaction would, until the returned function releases it. On SQLite a write then waits
 * out the server's busy timeout. On PostgreSQL it would wait out the statement timeout
 * (30 s): every write that queues for the lock is cancelled at once instead, which ends it
 * as that timeout does (query_canceled).
 */
export async function holdWriteLock(dataDir: string): Promise<() => Promise<void>> {
  if (testStore === 'sqlite') {
    const other = new Database(join(dataDir, 'imprint.db'));
    other.exec('BEGIN IMMEDIATE');
    return async () => {
      other.exec('ROLLBACK');
      other.close();
    };
  }
  const holder = new pg.Client({ connectionString: startedDatabase(dataDir) });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, LOCK.writer]);
  // The two-key form of an advisory lock shows in pg_locks as classid, objid and objsubid 2.
  const cancelWaiters = () =>
    holder.query(
      `SELECT pg_cancel_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2 AND NOT granted`,
      [LOCK_NAMESPACE, LOCK.writer],
    );
  let watching = cancelWaiters();
  const watcher = setInterval(() => (watching = watching.then(cancelWaiters)), 50);
  return async () => {
    clearInterval(watcher);
    await watching;
    await holder.end(); // ends the session, and its lock with it
  };
}
