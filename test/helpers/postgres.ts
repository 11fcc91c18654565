/**
 * PostgreSQL for tests: a fresh empty database on the run's one server (started by the
 * globalSetup test/setup/postgres.ts), or a private server for a test that restarts or
 * kills PostgreSQL under load (started the same way; the test stops it).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export { startPostgres, type PostgresServer } from '../setup/postgres-server.js';

/** Runs one SQL statement on a connection of its own and returns the rows. */
export async function query<T extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Creates a new, empty database on the run's server and returns its URL (the superuser's). */
export async function freshDatabaseUrl(): Promise<string> {
  const url = new URL(inject('postgresUrl'));
  // Unique across the run's worker processes and within one.
  const name = `test_${process.pid}_${randomBytes(6).toString('hex')}`;
  await query(url.href, `CREATE DATABASE ${name}`);
  url.pathname = `/${name}`;
  return url.href;
}
