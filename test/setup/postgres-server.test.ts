/**
 * The tests' PostgreSQL: the run's shared server hands out fresh databases, and a private
 * server survives a restart and a crash with its committed data, leaving no process behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { isRunning } from '../helpers/process-tree.js';
import { freshDatabaseUrl, query, startPostgres, type PostgresServer } from '../helpers/postgres.js';

describe('the shared server', () => {
  it('hands out a new, empty database each time', async () => {
    const [a, b] = await Promise.all([freshDatabaseUrl(), freshDatabaseUrl()]);
    expect(a).not.toBe(b);
    await query(a!, 'CREATE TABLE only_here (x int)');
    expect(await query(b!, "SELECT tablename FROM pg_tables WHERE tablename = 'only_here'")).toEqual([]);
  });

  it('commits durably and listens on loopback only', async () => {
    const url = await freshDatabaseUrl();
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const settings = "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync, current_setting('listen_addresses') AS listen";
    expect(await query(url, settings)).toEqual([{ fsync: 'on', sync: 'on', listen: '127.0.0.1' }]);
  });
});

describe('a private server', () => {
  let server: PostgresServer | undefined;
  afterAll(() => server?.stop());

  it('keeps committed data across a restart and a crash, and a crash leaves no process', async () => {
    const started = await startPostgres();
    server = started;
    await query(started.url, 'CREATE TABLE kept (x int)');
    await query(started.url, 'INSERT INTO kept VALUES (1)');
    await started.restart();
    await query(started.url, 'INSERT INTO kept VALUES (2)');

    // Every process of the server, background ones included.
    const pids = (await query<{ pid: number }>(started.url, 'SELECT pid FROM pg_stat_activity')).map((row) => row.pid);
    expect(pids.length).toBeGreaterThan(3);
    await started.kill();
    expect(pids.filter(isRunning)).toEqual([]);
    await expect(query(started.url, 'SELECT 1')).rejects.toThrow();

    await started.restart();
    expect(await query(started.url, 'SELECT x FROM kept ORDER BY x')).toEqual([{ x: 1 }, { x: 2 }]);
    await started.stop();
    await expect(query(started.url, 'SELECT 1')).rejects.toThrow();
  });
});
