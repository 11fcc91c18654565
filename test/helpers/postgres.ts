/**
 * PostgreSQL for tests: a fresh empty database on the run's one server (started by the
 * globalSetup test/setup/postgres.ts), or a private server for a test that restarts or
 * kills PostgreSQL under load (started the same way; the test stops it).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { postgresBinDir } from '../setup/postgres-server.js';

export { startPostgres, type PostgresServer } from '../setup/postgres-server.js';

/** Runs SQL with psql against `url` (no driver needed); returns what it printed, unaligned and without headers. */
export async function psql(url: string, sql: string): Promise<string> {
  const { stdout } = await promisify(execFile)(join(postgresBinDir(), 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return stdout;
}

/** Creates a new, empty database on the run's server and returns its URL (the superuser's). */
export async function freshDatabaseUrl(): Promise<string> {
  const url = new URL(inject('postgresUrl'));
  // Unique across the run's worker processes and within one.
  const name = `test_${process.pid}_${randomBytes(6).toString('hex')}`;
  await psql(url.href, `CREATE DATABASE ${name}`);
  url.pathname = `/${name}`;
  return url.href;
}
