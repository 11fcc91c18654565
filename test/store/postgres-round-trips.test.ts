/**
 * The round trips of PostgreSQL's hot path. The tokens asked for together are looked up in
 * one query: each caller still gets its own token (or none), sees what committed before it
 * asked, and a failed query fails each of its callers with a storage error the server
 * answers 503, and the lookup is planned once per connection (the planner priced the few
 * keys of a lookup below its kept plan each time). Enrollments committed together, and
 * nothing else, are one call: a transaction of its own, writer lock to commit.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeUnavailable } from '../../src/store/failures.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { audit, mint, newId, newToken, redeem, redemption } from './contract/harness.js';
import { query, startPostgres, type PostgresServer } from '../helpers/postgres.js';

let server: PostgresServer;
let store: PostgresStore;

beforeAll(async () => {
  // Statements inside functions too (toplevel false), and how often each was planned.
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

/** How many times PostgreSQL ran a statement whose text contains `fragment`, sent by a client (not run by a function). */
async function calls(fragment: string): Promise<number> {
  const [row] = await query<{ calls: string | null }>(server.url, 'SELECT sum(calls) AS calls FROM pg_stat_statements WHERE query LIKE $1 AND toplevel', [
    `%${fragment}%`,
  ]);
  return Number(row?.calls ?? 0);
}

describe('enrollments committed together on PostgreSQL', () => {
  it('record their devices, certificates and audit events in one call, with no BEGIN, COMMIT or savepoint', async () => {
    const tokens = await Promise.all(Array.from({ length: 8 }, () => mint(store)));
    const count = () => Promise.all(['imprint_enroll_batch', 'SAVEPOINT', 'BEGIN', 'COMMIT', 'INSERT INTO audit_events'].map(calls));
    const [call, savepoints, begins, commits, audits] = await count();
    const results = await Promise.all(tokens.map((token) => store.redeemTokenAndRecordCertificate(redemption(token, newId()))));
    expect(results).toEqual(tokens.map(() => ({ ok: true })));
    expect(await count()).toEqual([call! + 1, savepoints, begins, commits, audits]);
    // The events go in by the function's own INSERT.
  });
});

describe('token lookups on PostgreSQL', () => {
  it('answers lookups made together from one query, each with its own token', async () => {
    const tokens = Array.from({ length: 40 }, () => newToken());
    await store.createTokens(tokens, audit('tokens.create'));
    const unknown = randomBytes(32);
    const before = await calls('imprint_tokens_by_hash');

    const hashes = [...tokens.map((t) => t.hash), unknown, tokens[0]!.hash];
    const found = await Promise.all(hashes.map((hash) => store.findTokenByHash(hash)));

    expect(await calls('imprint_tokens_by_hash')).toBe(before + 1);
    expect(found.slice(0, 40).map((t) => t?.id)).toEqual(tokens.map((t) => t.id));
    expect(found[40]).toBeUndefined();
    // The same token twice: equal records, not one object two callers share.
    expect(found[41]).toEqual(found[0]);
    expect(found[41]).not.toBe(found[0]);
  });

  it('sees a redemption that committed before the lookup was made', async () => {
    const token = await mint(store);
    // A batch of lookups on its way while the token is redeemed ...
    const early = Promise.all(Array.from({ length: 5 }, () => store.findTokenByHash(randomBytes(32))));
    await redeem(store, redemption(token, newId()));
    // ... does not answer a lookup made after the commit.
    expect((await store.findTokenByHash(token.hash))?.usedAt).not.toBeNull();
    await early;
  });

  it('fails every lookup of a failed query with a storage error, then recovers', async () => {
    const token = await mint(store);
    await server.kill();
    const lookups = await Promise.allSettled([token.hash, randomBytes(32), token.hash].map((hash) => store.findTokenByHash(hash)));
    for (const lookup of lookups) {
      expect(lookup.status).toBe('rejected');
      expect(storeUnavailable((lookup as PromiseRejectedResult).reason)?.status).toBe(503);
    }
    await server.restart();
    await expect.poll(() => store.findTokenByHash(token.hash).catch(() => undefined), { timeout: 20_000 }).toMatchObject({ id: token.id });
  }, 60_000);

  it('are planned once per connection, however many keys each asks for', async () => {
    // Enough for a table with statistics (createTokens analyzes a large batch), as in service.
    const tokens = Array.from({ length: 5_000 }, () => newToken());
    await store.createTokens(tokens, audit('tokens.create'));
    const lookups = async () => {
      const [row] = await query<{ calls: string | null; plans: string | null }>(
        server.url,
        `SELECT sum(calls) AS calls, sum(plans) AS plans FROM pg_stat_statements WHERE query LIKE '%FROM tokens WHERE hash = ANY%'`,
      );
      return { calls: Number(row?.calls ?? 0), plans: Number(row?.plans ?? 0) };
    };
    const before = await lookups();
    for (const [i, token] of tokens.slice(0, 40).entries()) {
      const found = await Promise.all([store.findTokenByHash(token.hash), ...(i % 2 ? [store.findTokenByHash(randomBytes(32))] : [])]);
      expect(found[0]?.id).toBe(token.id);
    }
    const after = await lookups();
    expect(after.calls - before.calls).toBe(40);
    // At most once on each of the pool's connections (10 at most).
    expect(after.plans - before.plans).toBeLessThanOrEqual(10);
  });
});
