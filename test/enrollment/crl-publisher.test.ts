/**
 * When the CRL is rebuilt: when revocations change, after a day, and when the clock went
 * back; and that processes sharing one store (cluster workers, the CLI) serve the same one.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { openssl, tempDir } from '../helpers/openssl.js';

let now = new Date('2026-06-01T12:00:00Z');
let instance: Instance;
/** A second process's view of the same data directory, as a second worker has. */
let other: Instance;
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
  other = await openInstance(dataDir, { clock });
});
afterAll(async () => {
  await instance.close();
  await other.close();
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

  it('serves one CRL from every process on the store: built once, and a revocation by either moves both on', async () => {
    const [mine, theirs] = [instance.signing().crls, other.signing().crls];
    const first = await mine.issuerCrl();
    expect((await theirs.issuerCrl()).equals(first)).toBe(true);

    const operator = await other.signing().operators.issue({ name: 'crl-shared', role: 'admin' }, { actor: 'cli:test', role: 'admin' });
    await other.signing().operators.revoke('crl-shared', { actor: 'cli:test', role: 'admin' });
    // A burst at both at once: one of them builds (it claimed first), every answer is that CRL.
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? theirs : mine).issuerCrl()));
    const a = burst[0]!;
    for (const each of burst) expect(each.equals(a)).toBe(true);
    expect(crlNumber(a)).toBe(crlNumber(first) + 1);
    expect((await theirs.issuerCrl()).equals(a)).toBe(true);
    const file = join(work, 'shared.der');
    writeFileSync(file, a);
    expect(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text'])).toContain(`Serial Number: ${operator.serial.toUpperCase()}`);
  });

  it('a newer CRL published by another process replaces the one held, even before a day has passed', async () => {
    const [mine, theirs] = [instance.signing().crls, other.signing().crls];
    const held = await mine.issuerCrl();
    now = new Date(now.getTime() + 25 * 3_600_000); // the other process rebuilds first
    const newer = await theirs.issuerCrl();
    expect(crlNumber(newer)).toBeGreaterThan(crlNumber(held));
    expect((await mine.issuerCrl()).equals(newer)).toBe(true);
    expect((await mine.rootCrl()).equals(await theirs.rootCrl())).toBe(true);
  });
});
