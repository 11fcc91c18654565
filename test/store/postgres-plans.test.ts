/**
 * The plans of PostgreSQL's hot path: a token lookup is planned once per connection, not on
 * every call (the planner priced the few keys of a lookup below its kept plan each time).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { audit, newToken } from './contract/harness.js';
import { query, startPostgres, type PostgresServer } from '../helpers/postgres.js';

let server: PostgresServer;
let store: PostgresStore;

beforeAll(async () => {
  server = await startPostgres({
    settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all', 'pg_stat_statements.track_planning': 'on' },
  });
  await query(server.url, 'CREATE EXTENSION pg_stat_statements');
  store = await PostgresStore.open(server.url);
}, 60_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
});

describe('token lookups on PostgreSQL', () => {
  it('are planned once per connection, however many keys each asks for', async () => {
    // Enough for a table with statistics (createTokens analyzes a large batch), as in service.
    const tokens = Array.from({ length: 5_000 }, () => newToken());
    await store.createTokens(tokens, audit('tokens.create'));
    for (const [i, token] of tokens.slice(0, 40).entries()) {
      const found = await Promise.all([store.findTokenByHash(token.hash), ...(i % 2 ? [store.findTokenByHash(randomBytes(32))] : [])]);
      expect(found[0]?.id).toBe(token.id);
    }
    const [lookups] = await query<{ calls: string; plans: string }>(
      server.url,
      `SELECT sum(calls) AS calls, sum(plans) AS plans FROM pg_stat_statements WHERE query LIKE '%FROM tokens WHERE hash = ANY%'`,
    );
    expect(Number(lookups!.calls)).toBeGreaterThanOrEqual(40);
    // The pool has at most 10 connections.
    expect(Number(lookups!.plans)).toBeLessThanOrEqual(10);
  });
});
