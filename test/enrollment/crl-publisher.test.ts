/** When the CRL is rebuilt: when revocations change, after a day, and when the clock went back. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { openssl, tempDir } from '../helpers/openssl.js';

let now = new Date('2026-06-01T12:00:00Z');
let instance: Instance;
const work = tempDir();

/** The CRL number openssl reads from a DER CRL. */
function crlNumber(der: Buffer): number {
  const file = join(work, `crl-${Math.random()}.der`);
  writeFileSync(file, der);
  return parseInt(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber']).split('=')[1]!, 16);
}

beforeAll(async () => {
  const dataDir = join(work, 'data');
  const clock = { now: () => now };
  await initInstance(dataDir, {}, clock);
  instance = await openInstance(dataDir, { clock });
});
afterAll(async () => {
  await instance.close();
});

describe('CrlPublisher', () => {
  it('serves the same CRL until a day has passed, then a new one', async () => {
    const crls = instance.signing().crls;
    const first = await crls.issuerCrl();
    now = new Date(now.getTime() + 23 * 3_600_000);
    expect(await crls.issuerCrl()).toBe(first);
    now = new Date(now.getTime() + 2 * 3_600_000);
    const next = await crls.issuerCrl();
    expect(crlNumber(next)).toBeGreaterThan(crlNumber(first));
  });

  it('builds a new CRL when the clock went back, so thisUpdate is never in the future', async () => {
    const crls = instance.signing().crls;
    const before = await crls.issuerCrl();
    now = new Date(now.getTime() - 3 * 3_600_000);
    const after = await crls.issuerCrl();
    expect(after).not.toBe(before);
    expect(crlNumber(after)).toBeGreaterThan(crlNumber(before));
  });
});
