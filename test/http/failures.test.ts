/**
 * Storage conditions the operator must hear about and the client may retry: a full
 * database and a write lock held too long answer 503 service_unavailable with Retry-After,
 * record nothing, and the server recovers once the condition ends.
 */
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { holdWriteLock, query, testStore } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

async function enroll(id: string, token: string): Promise<Response> {
  const key = await generateDeviceKey();
  return call(`${t.url}/v1/enroll`, { ca: t.rootPem, json: { csr: buildCsr(key, id) }, headers: { authorization: `Bearer ${token}` } });
}

function expectUnavailable(response: Response, message: RegExp) {
  expect(response.status).toBe(503);
  expect(response.body).toEqual({ error: 'service_unavailable', message: expect.stringMatching(message) });
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
}

const tokenRow = (token: { id: string }) => query<{ used_at: number | null }>(t.dataDir, 'SELECT used_at FROM tokens WHERE id = ?', token.id)[0];

describe('storage conditions', () => {
  // SQLite caps its file's size on a connection; filling a PostgreSQL server's disk is no test to run on a shared machine.
  it.skipIf(testStore === 'postgres')('a full database: 503, the token stays unused, and enrollment resumes once there is room', async () => {
    // SQLite's own cap on the file's size, on the server's connection: the same SQLITE_FULL
    // a full disk gives, without filling the machine's disk.
    // The tokens first, then the cap: it is enrollment that must find the database full.
    const tokens = [];
    for (let i = 0; i < 30; i++) tokens.push(await t.mintToken());
    const db = (t.server.instance.store as unknown as { db: Database.Database }).db;
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    let full: { response: Response; token: { id: string; token: string } } | undefined;
    try {
      for (const [i, token] of tokens.entries()) {
        const response = await enroll(`full-${i}`, token.token);
        if (response.status !== 201) {
          full = { response, token };
          break;
        }
      }
      expect(full, 'the database filled up within 30 enrollments').toBeDefined();
      expectUnavailable(full!.response, /out of storage/);
      expect(tokenRow(full!.token)?.used_at).toBeNull();
    } finally {
      // Room again, whatever happened: the next test writes too.
      db.pragma('max_page_count = 4294967294');
    }
    const retried = await enroll('full-retry', full!.token.token);
    expect(retried.status).toBe(201);
  });

  it('a write lock held past the busy timeout: 503, and the same request succeeds once it is released', async () => {
    const token = await t.mintToken();
    const release = await holdWriteLock(t.dataDir);
    try {
      expectUnavailable(await enroll('locked-001', token.token), /busy/);
    } finally {
      await release();
    }
    expect(tokenRow(token)?.used_at).toBeNull();
    expect((await enroll('locked-001', token.token)).status).toBe(201);
  });
});
