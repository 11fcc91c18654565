/**
 * Store contract, CRLs: numbers strictly increase, also when taken concurrently, and a
 * published CRL is never replaced by one with a lower number (RFC 5280 5.2.3).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CrlScope, PublishedCrl } from '../../../src/enrollment/model.js';
import { at, useStores } from './harness.js';
import { STORES } from './stores.js';

const crl = (scope: CrlScope, crlNumber: number, revocationSeq = 0): PublishedCrl => ({
  scope,
  crlNumber,
  revocationSeq,
  builtAt: at(crlNumber),
  thisUpdate: at(crlNumber - 1),
  nextUpdate: at(crlNumber + 100),
  signature: randomBytes(72),
});

describe.each(STORES)('$name store: CRLs', (backend) => {
  const stores = useStores(backend);

  it('hands out strictly increasing CRL numbers, also to concurrent callers', async () => {
    const store = await stores.fresh();
    const first = await store.nextCrlNumber();
    const second = await store.nextCrlNumber();
    expect(second).toBeGreaterThan(first);
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => store.nextCrlNumber()));
    expect(new Set(concurrent).size).toBe(20);
    expect(Math.min(...concurrent)).toBeGreaterThan(second);
    expect(await store.nextCrlNumber()).toBeGreaterThan(Math.max(...concurrent));
  });

  it('publishes per scope and never goes back to a lower number', async () => {
    const store = await stores.fresh();
    expect(await store.publishedCrl('issuer')).toBeUndefined();
    expect(await store.crlState('issuer')).toEqual({ revocationSeq: await store.revocationSeq(), publishedNumber: undefined });

    const five = crl('issuer', 5, 3);
    expect(await store.publishCrl(five)).toEqual(five);
    expect(await store.publishedCrl('issuer')).toEqual(five);
    expect((await store.crlState('issuer')).publishedNumber).toBe(5);
    // A slower process that built an older CRL gets the newer one back.
    expect(await store.publishCrl(crl('issuer', 4, 9))).toEqual(five);
    expect(await store.publishedCrl('issuer')).toEqual(five);

    const six = crl('issuer', 6, 4);
    expect(await store.publishCrl(six)).toEqual(six);
    expect((await store.crlState('root')).publishedNumber).toBeUndefined();
    const root = crl('root', 1);
    expect(await store.publishCrl(root)).toEqual(root);
    expect(await store.publishedCrl('issuer')).toEqual(six);
  });

  it('keeps the highest of CRLs published concurrently', async () => {
    const store = await stores.fresh();
    const crls = [7, 3, 9, 1, 8, 2, 6, 4, 5].map((n) => crl('issuer', n));
    const results = await Promise.all(crls.map((c) => store.publishCrl(c)));
    for (const [i, result] of results.entries()) expect(result.crlNumber).toBeGreaterThanOrEqual(crls[i]!.crlNumber);
    expect(await store.publishedCrl('issuer')).toEqual(crls[2]);
  });
});
