/**
 * The tests' PostgreSQL: the run's shared server hands out fresh databases, and a private
 * server survives a restart and a crash with its committed data, leaving no process behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { isRunning } from '../helpers/process-tree.js';
import { freshDatabaseUrl, psql, startPostgres, type PostgresServer } from '../helpers/postgres.js';

describe('the shared server', () => {
  it('hands out a new, empty database each time', async () => {
    const [a, b] = await Promise.all([freshDatabaseUrl(), freshDatabaseUrl()]);
    expect(a).not.toBe(b);
    await psql(a!, 'CREATE TABLE only_here (x int)');
    expect(await psql(b!, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")).toBe('0\n');
  });

  it('commits durably and listens on loopback only', async () => {
    const url = await freshDatabaseUrl();
    expect(new URL(url).hostname).toBe('127.0.0.1');
    expect(await psql(url, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('listen_addresses')")).toBe('on|on|127.0.0.1\n');
  });
});

describe('a private server', () => {
  let server: PostgresServer;
  afterAll(() => server?.stop());

  it('keeps committed data across a restart and a crash, and a crash leaves no process', async () => {
    server = await startPostgres();
    await psql(server.url, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)');
    await server.restart();
    await psql(server.url, 'INSERT INTO kept VALUES (2)');

    // Every process of the server, background ones included.
    const pids = (await psql(server.url, 'SELECT pid FROM pg_stat_activity')).trim().split('\n').map(Number);
    expect(pids.length).toBeGreaterThan(3);
    await server.kill();
    expect(pids.filter(isRunning)).toEqual([]);
    await expect(psql(server.url, 'SELECT 1')).rejects.toThrow();

    await server.restart();
    expect(await psql(server.url, 'SELECT string_agg(x::text, \',\' ORDER BY x) FROM kept')).toBe('1,2\n');
    await server.stop();
    await expect(psql(server.url, 'SELECT 1')).rejects.toThrow();
  });
});
