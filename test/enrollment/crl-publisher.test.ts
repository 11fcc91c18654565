/**
 * When the CRL is rebuilt: when revocations change (at most once a second however many), after
 * a day, and when the clock went back; and that processes sharing one store (cluster workers,
 * the CLI; instances on one PostgreSQL database) serve the same one, which the store keeps
 * as its signature, not its DER.
 */
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crlDer, type SignedCrl } from '../../src/ca/crl.js';
import { HELD_WHILE_UNREACHABLE_MS } from '../../src/enrollment/crl-publisher.js';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { freshDatabaseUrl, query } from '../helpers/postgres.js';

const work = tempDir();

/** The CRL number openssl reads from a CRL. */
function crlNumber(crl: SignedCrl): number {
  const file = join(work, `crl-${Math.random()}.der`);
  writeFileSync(file, crlDer(crl));
  return parseInt(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber']).split('=')[1]!, 16);
}

/** Whether two CRLs are the same bytes. */
const same = (a: SignedCrl, b: SignedCrl): boolean => crlDer(a).equals(crlDer(b));
/** Whether a CRL lists the serial (lowercase hex). */
const lists = (crl: SignedCrl, serial: string): boolean => crlDer(crl).includes(Buffer.from(serial, 'hex'));

describe.each(['sqlite', 'postgres'])('CrlPublisher on %s', (backend) => {
  let now = new Date('2026-06-01T12:00:00Z');
  let instance: Instance;
  /** A second process's view of the same store, as a second worker or instance has. */
  let other: Instance;
  const dataDir = join(work, backend);
  let databaseUrl: string | undefined;

  /** Writes to the store behind the publishers' backs, as someone with the database could. */
  async function tamper(sql: string): Promise<void> {
    if (databaseUrl) return void (await query(databaseUrl, sql));
    const db = new Database(join(dataDir, 'imprint.db'));
    db.exec(sql);
    db.close();
  }

  beforeAll(async () => {
    const clock = { now: () => now };
    databaseUrl = backend === 'postgres' ? await freshDatabaseUrl() : undefined;
    await initInstance(dataDir, { databaseUrl }, clock);
    instance = await openInstance(dataDir, { clock, databaseUrl });
    other = await openInstance(dataDir, { clock, databaseUrl });
  });
  afterAll(async () => {
    await instance.close();
    await other.close();
  });

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
    expect(same(await theirs.issuerCrl(), first)).toBe(true);

    const operator = await other.signing().operators.issue({ name: 'crl-shared', role: 'admin' }, { actor: 'cli:test', role: 'admin' });
    await other.signing().operators.revoke('crl-shared', { actor: 'cli:test', role: 'admin' });
    // A burst at both at once: one of them builds (it claimed first), every answer is that CRL.
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? theirs : mine).issuerCrl()));
    const a = burst[0]!;
    for (const each of burst) expect(same(each, a)).toBe(true);
    expect(crlNumber(a)).toBe(crlNumber(first) + 1);
    expect(same(await theirs.issuerCrl(), a)).toBe(true);
    const file = join(work, 'shared.der');
    writeFileSync(file, crlDer(a));
    expect(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text'])).toContain(`Serial Number: ${operator.serial.toUpperCase()}`);
  });

  it('a newer CRL published by another process replaces the one held, even before a day has passed', async () => {
    const [mine, theirs] = [instance.signing().crls, other.signing().crls];
    const held = await mine.issuerCrl();
    now = new Date(now.getTime() + 25 * 3_600_000); // the other process rebuilds first
    const newer = await theirs.issuerCrl();
    expect(crlNumber(newer)).toBeGreaterThan(crlNumber(held));
    expect(same(await mine.issuerCrl(), newer)).toBe(true);
    expect(same(await mine.rootCrl(), await theirs.rootCrl())).toBe(true);
  });

  it('while the store fails, serves the CRL held only until a revocation it misses is known: that one is let go, never served again', async () => {
    const crls = instance.signing().crls;
    const held = await crls.issuerCrl();
    const { store } = instance;
    const failing = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const [crlState, claimCrlBuild] = [store.crlState, store.claimCrlBuild];
    const admin = { actor: 'cli:test', role: 'admin' } as const;
    const operator = await other.signing().operators.issue({ name: 'crl-let-go', role: 'admin' }, admin);
    try {
      // A database restart does not take the CRL away ...
      store.crlState = async () => Promise.reject(failing);
      expect(await crls.issuerCrl()).toBe(held);
      now = new Date(now.getTime() + HELD_WHILE_UNREACHABLE_MS - 1000);
      expect(await crls.issuerCrl()).toBe(held);
      // ... but cut off for longer, this process may have been overtaken by another's revocations.
      now = new Date(now.getTime() + 2000);
      await expect(crls.issuerCrl()).rejects.toBe(failing);
      store.crlState = crlState;
      expect(await crls.issuerCrl()).toBe(held);

      await other.signing().operators.revoke(operator.name, admin);
      now = new Date(now.getTime() + 2000);
      store.claimCrlBuild = async () => Promise.reject(failing);
      await expect(crls.issuerCrl()).rejects.toBe(failing);
      // The store still failing at its first read: the CRL that misses the revocation is gone.
      store.crlState = async () => Promise.reject(failing);
      await expect(crls.issuerCrl()).rejects.toBe(failing);
    } finally {
      Object.assign(store, { crlState, claimCrlBuild });
    }
    const next = await crls.issuerCrl();
    expect(crlNumber(next)).toBeGreaterThan(crlNumber(held));
    expect(lists(next, operator.serial)).toBe(true);
  });

  it('under a stream of revocations: at most one build a second, every CRL served lists each revocation made before it was asked for, numbers only grow in each process', async () => {
    const [mine, theirs] = [instance.signing().crls, other.signing().crls];
    const admin = { actor: 'cli:test', role: 'admin' } as const;
    const issued = [];
    for (let i = 0; i < 12; i++) issued.push(await other.signing().operators.issue({ name: `crl-stream-${i}`, role: 'admin' }, admin));
    await mine.issuerCrl();
    let builds = 0;
    mine.observer = theirs.observer = (_scope, _number, _bytes, buildSeconds) => void (buildSeconds !== undefined && builds++);
    const started = performance.now();
    const served: Promise<{ crl: SignedCrl; revoked: number }>[] = [];
    /** Per process, the CRLs in the order it answered. */
    const answered = new Map<unknown, SignedCrl[]>([
      [mine, []],
      [theirs, []],
    ]);
    for (const [i, operator] of issued.entries()) {
      await (i % 2 ? other : instance).signing().operators.revoke(operator.name, admin);
      const crls = i % 3 ? theirs : mine;
      served.push(crls.issuerCrl().then((crl) => (answered.get(crls)!.push(crl), { crl, revoked: i + 1 })));
      await new Promise((resolve) => setTimeout(resolve, 80));
    }
    const results = await Promise.all(served);
    const seconds = (performance.now() - started) / 1000;
    mine.observer = theirs.observer = undefined;

    for (const { crl, revoked } of results) {
      for (const operator of issued.slice(0, revoked)) expect(lists(crl, operator.serial)).toBe(true);
    }
    expect(builds).toBeGreaterThan(0);
    expect(builds).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    for (const crls of answered.values()) {
      const numbers = crls.map(crlNumber);
      expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
    }
    // Asked once more, one after the other: the same bytes from both, the last number published.
    const last = await mine.issuerCrl();
    expect(same(await theirs.issuerCrl(), last)).toBe(true);
    // What the store keeps of the CRL: its fields and signature, a few hundred bytes.
    const published = (await instance.store.publishedCrl('issuer'))!;
    expect(published.crlNumber).toBe(crlNumber(last));
    expect(published.crlNumber).toBe(Math.max(...results.map(({ crl }) => crlNumber(crl))));
    expect(published.signature.length).toBeLessThan(600);
    expect(published).not.toHaveProperty('der');
  });

  it('a CRL number counter set back, or a published CRL that does not verify, is built past: one CRL from every process, listing every revocation', async () => {
    const [mine, theirs] = [instance.signing().crls, other.signing().crls];
    const admin = { actor: 'cli:test', role: 'admin' } as const;
    const before = crlNumber(await mine.issuerCrl());

    await tamper('UPDATE revocation_state SET crl_number = 0');
    const operator = await other.signing().operators.issue({ name: 'crl-counter-back', role: 'admin' }, admin);
    await other.signing().operators.revoke(operator.name, admin);
    const built = await mine.issuerCrl();
    expect(crlNumber(built)).toBe(before + 1);
    expect(lists(built, operator.serial)).toBe(true);
    expect(same(await theirs.issuerCrl(), built)).toBe(true);

    // A row no key of ours signed, numbered far ahead: never served, and not a dead end either.
    await tamper(`UPDATE published_crls SET crl_number = 99999999, signature = ${databaseUrl ? "'\\x00'::bytea" : "X'00'"} WHERE scope = 'issuer'`);
    const past = await theirs.issuerCrl();
    expect(crlNumber(past)).toBe(100_000_000);
    expect(same(await mine.issuerCrl(), past)).toBe(true);
  });
});
