/** Which OCSP answers are reused, and when a fresh one is signed; read back by `openssl ocsp`. */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { OcspResponder } from '../../src/ca/ocsp.js';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { openssl, tempDir } from '../helpers/openssl.js';

let now = new Date('2026-06-01T12:00:00Z');
let instance: Instance;
const work = tempDir();
let dataDir: string;
let certPath: string;

/** A DER OCSP request made by openssl for `target` (`-cert FILE` or `-serial N`). */
function request(target: string[], nonce: boolean): Buffer {
  const file = join(work, `request-${Math.random()}.der`);
  openssl(['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), ...target, ...(nonce ? [] : ['-no_nonce']), '-reqout', file]);
  return readFileSync(file);
}

/** openssl's reading of a response, after checking its signature against the root. */
function read(response: Buffer): string {
  const file = join(work, `response-${Math.random()}.der`);
  writeFileSync(file, response);
  return openssl(['ocsp', '-respin', file, '-CAfile', join(dataDir, 'ca/root.pem'), '-resp_text']);
}

beforeAll(async () => {
  dataDir = join(work, 'data');
  const clock = { now: () => now };
  await initInstance(dataDir, {}, clock);
  instance = await openInstance(dataDir, { clock });
  const [token] = (await instance.tokens.mint({ count: 1, ttlSeconds: 86_400 }, { actor: 'cli:test', role: 'admin' })).tokens;
  const enrolled = await instance.signing().enrollment.enroll({ token: token!.token, csr: buildCsr(await generateDeviceKey(), 'ocsp-1') });
  certPath = join(work, 'device.pem');
  writeFileSync(certPath, enrolled.result.certificate);
});
afterAll(async () => {
  await instance.close();
});

describe('OcspService', () => {
  it('reuses a nonce-less answer for five minutes, then signs a fresh one', async () => {
    const ocsp = instance.signing().ocsp;
    const noNonce = request(['-cert', certPath], false);
    const first = await ocsp.respond(noNonce);
    expect(read(first)).toMatch(/Cert Status: good/);
    now = new Date(now.getTime() + 4 * 60_000);
    expect(await ocsp.respond(noNonce)).toBe(first);
    now = new Date(now.getTime() + 2 * 60_000);
    const next = await ocsp.respond(noNonce);
    expect(next).not.toBe(first);
    expect(read(next)).toMatch(/This Update: Jun  1 12:06:00 2026 GMT/);
  });

  it('signs a fresh answer when the clock went back, so thisUpdate is never in the future', async () => {
    const ocsp = instance.signing().ocsp;
    const noNonce = request(['-cert', certPath], false);
    const before = await ocsp.respond(noNonce);
    now = new Date(now.getTime() - 60_000);
    const after = await ocsp.respond(noNonce);
    expect(after).not.toBe(before);
    expect(read(after)).toMatch(/This Update: Jun  1 12:05:00 2026 GMT/);
  });

  it('signs every answer to a request with a nonce, and every answer about a serial it never issued', async () => {
    const ocsp = instance.signing().ocsp;
    const withNonce = request(['-cert', certPath], true);
    expect((await ocsp.respond(withNonce)).equals(await ocsp.respond(withNonce))).toBe(false);
    const unknown = request(['-serial', '0x0123456789abcdef0123456789abcdef'], false);
    const [a, b] = [await ocsp.respond(unknown), await ocsp.respond(unknown)];
    expect(a.equals(b)).toBe(false);
    expect(read(a)).toMatch(/Cert Status: unknown/);
  });

  it('signs the nonce answers asked for in one turn back to back, after the callbacks that asked', async () => {
    const ocsp = instance.signing().ocsp;
    const withNonce = request(['-cert', certPath], true);
    const trace: string[] = [];
    const original = OcspResponder.prototype.respond;
    const signing = vi.spyOn(OcspResponder.prototype, 'respond').mockImplementation(function (this: OcspResponder, ...args) {
      trace.push('sign');
      return original.apply(this, args);
    });
    try {
      // Immediates queued together run in one turn, each followed by its microtasks, as a
      // turn's I/O callbacks are (one queued while they run waits for the next turn).
      const asked = [0, 1, 2].map(
        (i) =>
          new Promise<Buffer>((resolve) =>
            setImmediate(() => {
              trace.push(`request ${i}`);
              resolve(ocsp.respond(withNonce));
            }),
          ),
      );
      const answers = await Promise.all(asked);
      expect(trace).toEqual(['request 0', 'request 1', 'request 2', 'sign', 'sign', 'sign']);
      for (const answer of answers) expect(read(answer)).toMatch(/Cert Status: good/);
    } finally {
      signing.mockRestore();
    }
  });

  it('keeps an answer in an allocation of its own, not a slice of the shared pool that would pin the whole block', async () => {
    const ocsp = instance.signing().ocsp;
    now = new Date(now.getTime() + 10 * 60_000);
    const kept = await ocsp.respond(request(['-cert', certPath], false));
    expect(kept.length).toBeLessThan(Buffer.poolSize / 2); // small enough for the pool
    expect({ offset: kept.byteOffset, allocation: kept.buffer.byteLength }).toEqual({ offset: 0, allocation: kept.length });
  });

  it('bounds the kept answers by their bytes: requests padded to the size limit crowd out no more than their size', async () => {
    const ocsp = instance.signing().ocsp;
    now = new Date(now.getTime() + 10 * 60_000);
    const plain = request(['-cert', certPath], false);
    const kept = await ocsp.respond(plain);
    expect(await ocsp.respond(plain)).toBe(kept);
    // The same question, padded with an extension nobody knows to just under the 4 KB limit.
    const contentOf = (element: Buffer) => element.subarray(element[1]! & 0x80 ? 2 + (element[1]! & 0x7f) : 2);
    const tbsContent = contentOf(contentOf(plain)); // OCSPRequest { TBSRequest { requestList } }
    const padded = () =>
      der.sequence(der.sequence(tbsContent, der.explicit(2, der.sequence(der.sequence(der.objectIdentifier('1.3.6.1.4.1.99999.1'), der.octetString(randomBytes(3700)))))));
    expect(padded().length).toBeLessThanOrEqual(4096);
    // 2,500 of them hold ~12 MB: past the bound, though far fewer than the 10,000 answers it has room for.
    for (let i = 0; i < 2500; i++) await ocsp.respond(padded());
    expect(await ocsp.respond(plain)).not.toBe(kept);
  });

  it('signs each nonce answer from a status read once, until something is revoked', async () => {
    const ocsp = instance.signing().ocsp;
    const store = instance.store;
    const original = store.certificateStatus.bind(store);
    const reads: string[] = [];
    store.certificateStatus = async (serial) => {
      reads.push(serial);
      return original(serial);
    };
    try {
      const withNonce = request(['-cert', certPath], true);
      for (let i = 0; i < 3; i++) expect(read(await ocsp.respond(withNonce))).toMatch(/Cert Status: good/);
      expect(reads.length).toBeLessThanOrEqual(1);
      // Anything revoked, any device: the next answer reads again.
      const [token] = (await instance.tokens.mint({ count: 1, ttlSeconds: 86_400 }, { actor: 'cli:test', role: 'admin' })).tokens;
      await instance.signing().enrollment.enroll({ token: token!.token, csr: buildCsr(await generateDeviceKey(), 'ocsp-other') });
      await instance.fleet.revokeDevice('ocsp-other', 'superseded', { actor: 'cli:test', role: 'admin' });
      const before = reads.length;
      expect(read(await ocsp.respond(withNonce))).toMatch(/Cert Status: good/);
      expect(reads.length).toBe(before + 1);
    } finally {
      store.certificateStatus = original;
    }
  });

  it('while the store cannot be read, serves a kept answer as it was signed for its five minutes, and signs nothing anew', async () => {
    const ocsp = instance.signing().ocsp;
    const store = instance.store;
    const noNonce = request(['-cert', certPath], false);
    const withNonce = request(['-cert', certPath], true);
    now = new Date(now.getTime() + 60 * 60_000);
    const kept = await ocsp.respond(noNonce);
    expect(read(await ocsp.respond(withNonce))).toMatch(/Cert Status: good/); // its status is kept too
    const { revocationSeq, certificateStatus } = store;
    const unreadable = async (): Promise<never> => {
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    };
    store.revocationSeq = unreadable;
    store.certificateStatus = unreadable;
    try {
      now = new Date(now.getTime() + 4 * 60_000);
      expect(await ocsp.respond(noNonce)).toBe(kept);
      // Another process may have revoked it meanwhile: no answer signed now may say good.
      await expect(ocsp.respond(withNonce)).rejects.toThrow(/disk I\/O error/);
      now = new Date(now.getTime() + 2 * 60_000);
      await expect(ocsp.respond(noNonce)).rejects.toThrow(/disk I\/O error/);
      now = new Date(now.getTime() + 24 * 60 * 60_000);
      await expect(ocsp.respond(noNonce)).rejects.toThrow(/disk I\/O error/);
    } finally {
      Object.assign(store, { revocationSeq, certificateStatus });
    }
    expect(read(await ocsp.respond(noNonce))).toMatch(/Cert Status: good/);
  });

  it.each([1, 2, 16])('an answer about %i certificates, with a nonce and without, reads back whole and signed', async (count) => {
    const ocsp = instance.signing().ocsp;
    const serials = Array.from({ length: count - 1 }, (_, i) => ['-serial', `0x${(i + 1).toString(16).padStart(32, '5')}`]).flat();
    for (const nonce of [true, false]) {
      const text = read(await ocsp.respond(request(['-cert', certPath, ...serials], nonce)));
      expect(text.match(/Cert Status: good/g)).toHaveLength(1);
      expect(text.match(/Cert Status: unknown/g) ?? []).toHaveLength(count - 1);
    }
  });

  it('answers the requests of one turn from one read of the revocation sequence, made once the last of them has arrived', async () => {
    const ocsp = instance.signing().ocsp;
    const noNonce = request(['-cert', certPath], false);
    const withNonce = request(['-cert', certPath], true);
    await ocsp.respond(noNonce);
    const store = instance.store;
    const original = store.revocationSeq;
    const trace: string[] = [];
    store.revocationSeq = () => {
      trace.push('read');
      return original();
    };
    try {
      const asked = [noNonce, withNonce, noNonce].map(
        (der, i) =>
          new Promise<Buffer>((resolve) =>
            setImmediate(() => {
              trace.push(`request ${i}`);
              resolve(ocsp.respond(der));
            }),
          ),
      );
      const answers = await Promise.all(asked);
      expect(trace).toEqual(['request 0', 'request 1', 'request 2', 'read']);
      for (const answer of answers) expect(read(answer)).toMatch(/Cert Status: good/);
    } finally {
      store.revocationSeq = original;
    }
  });

  it('a request asked after a revocation was recorded, in the same turn as one asked before it, is answered revoked', async () => {
    const ocsp = instance.signing().ocsp;
    const [token] = (await instance.tokens.mint({ count: 1, ttlSeconds: 86_400 }, { actor: 'cli:test', role: 'admin' })).tokens;
    const enrolled = await instance.signing().enrollment.enroll({ token: token!.token, csr: buildCsr(await generateDeviceKey(), 'ocsp-same-turn') });
    const file = join(work, 'same-turn.pem');
    writeFileSync(file, enrolled.result.certificate);
    const noNonce = request(['-cert', file], false);
    expect(read(await ocsp.respond(noNonce))).toMatch(/Cert Status: good/); // kept
    const before = ocsp.respond(noNonce);
    // SQLite has committed it once the call returns; its promise settles within the turn.
    await instance.store.revokeCertificate(enrolled.result.serial, 'keyCompromise', { at: now, actor: 'cli:test', action: 'certificates.revoke', outcome: 'ok' });
    const after = ocsp.respond(noNonce);
    // Both are answered from the turn's one read of the sequence, made after the revocation.
    for (const answer of await Promise.all([before, after])) expect(read(answer)).toMatch(/Cert Status: revoked/);
  });

  it('drops kept answers as soon as anything is revoked', async () => {
    const ocsp = instance.signing().ocsp;
    const noNonce = request(['-cert', certPath], false);
    const good = await ocsp.respond(noNonce);
    expect(await ocsp.respond(noNonce)).toBe(good);
    await instance.fleet.revokeDevice('ocsp-1', 'superseded', { actor: 'cli:test', role: 'admin' });
    const revoked = read(await ocsp.respond(noNonce));
    expect(revoked).toMatch(/Cert Status: revoked/);
    expect(revoked).toMatch(/Reason: superseded/);
  });
});
