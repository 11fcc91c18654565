/** The revocation watcher against a real store: signals that arrive while it looks are not lost. */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RevocationWatcher } from '../../src/enrollment/revocation-watcher.js';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { tempDir } from '../helpers/openssl.js';

let instance: Instance;
const admin = { actor: 'cli:test', role: 'admin' } as const;

beforeAll(async () => {
  const dataDir = join(tempDir(), 'data');
  await initInstance(dataDir, {});
  instance = await openInstance(dataDir, {});
});
afterAll(async () => {
  await instance.close();
});

async function enrolled(deviceId: string): Promise<string> {
  const [token] = (await instance.tokens.mint({ count: 1, ttlSeconds: 3600 }, admin)).tokens;
  const { result } = await instance.signing().enrollment.enroll({ token: token!.token, csr: buildCsr(await generateDeviceKey(), deviceId) });
  return result.serial;
}

it('looks again when told of a revocation during a look that found nothing new', async () => {
  const serial = await enrolled('revoked-mid-look');
  const store = instance.store;
  const revoked: string[][] = [];
  // An hour between polls: only the store's signal can bring the revocation here.
  const watcher = new RevocationWatcher(store, (serials) => revoked.push(serials), (error) => { throw error; }, 3_600_000);
  await watcher.start();
  const { revocationSeq } = store;
  let first = true;
  // The look reads the sequence, and the revocation commits (and signals) just after that read.
  store.revocationSeq = async () => {
    const seq = await revocationSeq.call(store);
    if (first) {
      first = false;
      await instance.fleet.revokeDevice('revoked-mid-look', 'keyCompromise', admin);
    }
    return seq;
  };
  try {
    await watcher.poll();
    expect(revoked).toEqual([[serial]]);
  } finally {
    store.revocationSeq = revocationSeq;
    watcher.stop();
  }
});
