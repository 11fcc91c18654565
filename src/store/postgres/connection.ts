/**
 * The connection pool, and the two ways the store talks through it: a read is one
 * statement on any connection; a write is a transaction that holds the writer lock
 * (locks.ts) from its first statement to its commit.
 */
import pg from 'pg';
import { statement, type Queryable, type Row } from './query.js';
import { Transaction } from './transaction.js';

const INT8_OID = 20;

/**
 * BIGINT columns (times in milliseconds, positions, counters, counts) as numbers: each
 * stays far below 2^53. Per pool, not pg's global parsers, which would change how every
 * other user of the driver in this process reads BIGINT.
 */
const types = {
  getTypeParser: ((oid, format) => (oid === INT8_OID && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/** How long a request waits for a connection before it is answered 503: the database may be down. */
const CONNECT_TIMEOUT_MS = 5_000;

/** One session on `url` outside the pool (migrations); the caller ends it. */
export async function connectClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'imprint', types });
  // Failures reach the caller through its queries; unheard, an 'error' event would end the process.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The pool's settings: short connection timeouts, and the server ends what hangs. */
function poolConfig(url: string): pg.PoolConfig {
  return {
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'imprint',
    // A statement that runs this long is stuck (a lock nobody releases): end it and answer
    // 503 rather than hold a request and a connection forever.
    statement_timeout: 30_000,
    // Every transaction holds the writer lock: one whose process stalled in it would stop
    // every instance's writes. Our transactions never idle; the server ends one that does.
    idle_in_transaction_session_timeout: 15_000,
    types,
  };
}

/** The pool of one store instance. */
export class Postgres implements Queryable {
  /**
   * Told after each commit of a transaction that revoked something. The NOTIFY it sent
   * reaches this process too, but only after its caller may have answered: this process's
   * own caches must not serve a revoked certificate once a client was told it is revoked.
   */
  revocationCommitted: () => void = () => {};

  private constructor(private readonly pool: pg.Pool) {}

  /**
   * A pool on `url`. It connects on first use and replaces connections that fail, so it
   * recovers by itself once a restarted server answers again.
   */
  static connect(url: string): Postgres {
    const pool = new pg.Pool(poolConfig(url));
    // A connection that fails while idle in the pool (the server restarted) is dropped
    // by the pool; without a listener its 'error' would end the process. One that fails
    // while a transaction holds it reports the failure through that transaction's query.
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    return new Postgres(pool);
  }

  async rows<R = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    return (await this.pool.query(statement(sql, params))).rows as R[];
  }

  async changes(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.pool.query(statement(sql, params))).rowCount ?? 0;
  }

  /**
   * Runs `work` in a transaction that holds the writer lock; commits what it did unless it
   * throws. A connection whose transaction could not even roll back is discarded.
   */
  async write<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const tx = await Transaction.begin(client);
      const result = await work(tx);
      await tx.commit();
      if (tx.revoking) this.revocationCommitted();
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackFailed: Error) => {
        broken = rollbackFailed;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Refreshes the planner's statistics of `table` after a bulk insert. Best effort: what
   * went before it is committed, so a failure here must not fail the caller.
   */
  async analyze(table: 'tokens'): Promise<void> {
    await this.pool.query(`ANALYZE ${table}`).catch(() => {});
  }

  /** Closes every connection. */
  end(): Promise<void> {
    return this.pool.end();
  }
}
