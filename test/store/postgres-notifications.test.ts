/**
 * PostgreSQL tells every store on the database of a revocation at its commit (LISTEN/NOTIFY),
 * a store tells its subscribers once when it starts listening (what was revoked before is
 * found by that look), and a store whose listening session died with the server listens
 * again once it is back.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { audit, enroll, newId } from './contract/harness.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

let server: PostgresServer;
let writer: PostgresStore;
let listener: PostgresStore;

beforeAll(async () => {
  server = await startPostgres();
  writer = await PostgresStore.open(server.url);
  listener = await PostgresStore.open(server.url);
}, 60_000);

afterAll(async () => {
  await Promise.all([writer?.close(), listener?.close()]);
  await server?.stop();
});

/** Resolves with the milliseconds until `store` is told of a revocation, or rejects after `ms`. */
function nextRevocation(store: PostgresStore, ms: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (unsubscribe(), reject(new Error(`not told within ${ms} ms`))), ms);
    const unsubscribe = store.onRevocation(() => {
      clearTimeout(timer);
      unsubscribe();
      resolve(performance.now() - started);
    });
  });
}

async function revokeOne(): Promise<void> {
  const { certificate } = await enroll(writer, newId());
  await writer.revokeCertificate(certificate.serial, 'unspecified', audit('certificates.revoke'));
}

it('another store on the database is told of a revocation at its commit', async () => {
  // The first subscription opens the listening session: let it settle before timing.
  listener.onRevocation(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const told = nextRevocation(listener, 1000);
  await revokeOne();
  expect(await told).toBeLessThan(1000);
});

it('a store starting to listen tells its subscribers once, so a revocation before it listened is found at once', async () => {
  const late = await PostgresStore.open(server.url);
  try {
    // Committed before anyone listens on this store: no NOTIFY reaches it.
    await revokeOne();
    let told = 0;
    late.onRevocation(() => told++);
    await vi.waitFor(() => expect(told).toBe(1), { timeout: 2000, interval: 5 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(told).toBe(1);
  } finally {
    await late.close();
  }
});

it('after PostgreSQL restarts, the listening session comes back by itself', async () => {
  await server.restart();
  // Writes fail until the pool reconnects; the first that succeeds is announced.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await writer.revocationSeq();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  // The session retries within a few seconds; each revocation after that is heard.
  let heard = false;
  for (let i = 0; i < 40 && !heard; i++) {
    const told = nextRevocation(listener, 500).then(() => true, () => false);
    await revokeOne();
    heard = await told;
  }
  expect(heard).toBe(true);
}, 60_000);
