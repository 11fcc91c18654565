/**
 * The CRL entries kept encoded between builds: each entry is what the DER helpers encode,
 * what the list gives for a CRL is byte for byte what encoding the same revocations from
 * scratch gives, as revocations are added and certificates expire, and openssl reads the
 * CRL made from them.
 */
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { encodeExtension, encodeName, randomSerial, signingKeyFor } from '../../src/ca/certificate-builder.js';
import { crlDer, crlSignatureValid, crlTbs, MAX_CRL_ENTRY_BYTES, signCrlTbs, signedCrl, writeCrlEntry, type CrlEntry } from '../../src/ca/crl.js';
import { CRL_REASON_CODES } from '../../src/ca/revocation-reasons.js';
import { CrlEntryList, type ListedEntry } from '../../src/ca/crl-entries.js';
import type { SignedCrl } from '../../src/ca/crl.js';
import { OID } from '../../src/ca/oids.js';
import { openssl, tempDir } from '../helpers/openssl.js';

const HOUR = 3_600_000;
const start = Date.parse('2026-06-01T00:00:00Z');
const REASONS = ['unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged'];

/** An entry as the DER helpers encode it, element by element. */
function encodeCrlEntry(entry: CrlEntry): Buffer {
  const code = CRL_REASON_CODES[entry.reason]!;
  const reason = code ? [der.sequence(encodeExtension({ oid: OID.cRLReason, critical: false, value: der.enumerated(code) }))] : [];
  return der.sequence(der.unsignedInteger(Buffer.from(entry.serial, 'hex')), der.time(new Date(entry.revokedAt)), ...reason);
}

/** `count` revocations in revocation order, expiring over the next `count` hours in no order. */
function revocations(count: number): ListedEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    serial: randomSerial((size) => randomBytes(i % 7 === 0 ? size + 4 : size)).toString('hex'),
    revokedAt: start + i * 1000,
    reason: REASONS[i % REASONS.length]!,
    notAfter: start + ((i * 7919) % count) * HOUR + HOUR / 2,
  }));
}

/** A CRL issuer with a fresh P-256 key: its signer, and the verifier its certificate would give. */
function testIssuer() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = signingKeyFor(privateKey);
  const issuer = {
    issuerName: encodeName([{ oid: OID.commonName, value: 'crl entries test' }]),
    issuerPublicKeyBits: publicKey.export({ format: 'der', type: 'spki' }).subarray(27),
    algorithm: signer.algorithm,
    digest: signer.digest,
    publicKey,
  };
  return { signer, issuer, publicKey };
}

/**
 * Appends `all` to `list` in growing batches 7 h apart, as a store lists them: the next
 * batch, less what expired by then. Yields after each: its time, step and how many were read.
 */
async function* fedInBatches(list: CrlEntryList, all: readonly ListedEntry[]): AsyncGenerator<{ at: number; step: number; added: number }> {
  let added = 0;
  for (let step = 1; added < all.length; step++) {
    const at = start + step * 7 * HOUR;
    const batch = all.slice(added, added + 97 * step).filter((entry) => entry.notAfter > at);
    added = Math.min(all.length, added + 97 * step);
    await list.append([batch], added, new Date(at));
    yield { at, step, added };
  }
}

/** The entries encoded from scratch: those not expired at `at`, in order. */
const fromScratch = (entries: readonly ListedEntry[], at: number): Buffer =>
  Buffer.concat(entries.filter((entry) => entry.notAfter > at).map(encodeCrlEntry));

describe('writeCrlEntry', () => {
  it('writes what the DER helpers encode: serials with leading zeros or the top bit set, every reason, UTCTime and GeneralizedTime', () => {
    const serials = ['00', '01', '7f', '80', 'ff', '0000ff', '00ff', '7fffffffffffffffffffffffffffffffffffffff', 'ffffffffffffffffffffffffffffffffffffffff'];
    const times = [
      start,
      Date.parse('2049-12-31T23:59:59.999Z'),
      Date.parse('2050-01-01T00:00:00Z'),
      Date.parse('1999-07-04T05:06:07Z'),
      Date.parse('2000-02-29T12:34:56.789Z'),
      Date.parse('2024-12-31T23:59:59Z'),
      Date.parse('2100-03-01T00:00:01Z'),
      // Calendar fields are computed, not read from a Date: any time from 1950 to 2200.
      ...Array.from({ length: 20 }, () => Date.UTC(1950, 0, 1) + Math.floor(Math.random() * 250 * 365.25 * 86_400_000)),
    ];
    const out = Buffer.alloc(MAX_CRL_ENTRY_BYTES + 8);
    const entries: CrlEntry[] = [];
    for (const serial of [...serials, ...Array.from({ length: 50 }, () => randomBytes(1 + (randomBytes(1)[0]! % 20)).toString('hex'))]) {
      for (const reason of Object.keys(CRL_REASON_CODES)) {
        for (const time of times) entries.push({ serial, revokedAt: time, reason });
      }
    }
    // Each time after another, then each after itself (a mass revocation's entries share one).
    for (const entry of [...entries, ...[...entries].sort((a, b) => a.revokedAt - b.revokedAt)]) {
      expect(out.subarray(3, writeCrlEntry(out, 3, entry)).equals(encodeCrlEntry(entry))).toBe(true);
    }
  });

  it('refuses a serial that is not 1 to 20 octets of hex', () => {
    const out = Buffer.alloc(MAX_CRL_ENTRY_BYTES);
    for (const serial of ['', 'abc', '00'.repeat(21), '0g', 'zz', '1é']) expect(() => writeCrlEntry(out, 0, { serial, revokedAt: start, reason: 'unspecified' })).toThrow(/not 1 to 20 octets/);
  });
});

describe('CrlEntryList', () => {
  it('gives what a from-scratch encoding gives, as revocations come in batches and certificates expire', async () => {
    const all = revocations(3000);
    const list = new CrlEntryList();
    for await (const { at, added } of fedInBatches(list, all)) {
      expect(list.seq).toBe(added);
      expect(Buffer.concat(list.encodedAt(new Date(at))).equals(fromScratch(all.slice(0, added), at))).toBe(true);
    }
    // Later still, with no new revocation: only expiry.
    const later = start + 2000 * HOUR;
    expect(Buffer.concat(list.encodedAt(new Date(later))).equals(fromScratch(all, later))).toBe(true);
    expect(list.count).toBe(all.filter((entry) => entry.notAfter > later).length);
  });

  it('holds no part of a range whose reading failed: it is emptied, to be read again from the start', async () => {
    const list = new CrlEntryList();
    const entries = revocations(20);
    await list.append([entries.slice(0, 10)], 10, new Date(start));
    async function* failing() {
      yield entries.slice(10, 15);
      throw new Error('connection lost');
    }
    await expect(list.append(failing(), 20, new Date(start))).rejects.toThrow('connection lost');
    expect([list.count, list.seq]).toEqual([0, 0]);
    await list.append([entries], 20, new Date(start));
    expect(Buffer.concat(list.encodedAt(new Date(start))).equals(fromScratch(entries, start))).toBe(true);
  });

  it('serves a CRL of an earlier time only as far back as the entries it dropped or was given without', async () => {
    const list = new CrlEntryList();
    const entries = revocations(10); // expiring 0.5, 9.5, 8.5, ..., 1.5 h after start
    await list.append([entries], 10, new Date(start));
    expect(list.servesAt(new Date(start - HOUR))).toBe(false);
    // Dropping those expired by 5 h (at 0.5, 1.5, 2.5, 3.5 and 4.5 h): a CRL of 4.6 h can still be made, one of 4.4 h not.
    expect(Buffer.concat(list.encodedAt(new Date(start + 5 * HOUR))).equals(fromScratch(entries, start + 5 * HOUR))).toBe(true);
    expect(list.count).toBe(5);
    expect(list.servesAt(new Date(start + 4.6 * HOUR))).toBe(true);
    expect(Buffer.concat(list.encodedAt(new Date(start + 4.6 * HOUR))).equals(fromScratch(entries, start + 4.6 * HOUR))).toBe(true);
    expect(list.servesAt(new Date(start + 4.4 * HOUR))).toBe(false);
    list.clear();
    expect([list.count, list.seq, list.servesAt(new Date(0))]).toEqual([0, 0, true]);
  });

  it('holds a CRL made from it in its own blocks, and no CRL made from it changes as revocations come and certificates expire', async () => {
    const { signer, issuer } = testIssuer();
    const all = revocations(3000);
    const list = new CrlEntryList();
    const made: { crl: SignedCrl; asMade: Buffer }[] = [];
    for await (const { at, step } of fedInBatches(list, all)) {
      const entries = list.encodedAt(new Date(at));
      const tbs = crlTbs(issuer, { crlNumber: step, thisUpdate: new Date(at), nextUpdate: new Date(at + HOUR) }, signer.algorithm, entries);
      const crl = signedCrl(tbs, signer.algorithm, signCrlTbs(tbs, signer));
      // The entries are the list's blocks themselves, not a copy of them.
      expect(entries.every((part) => crl.parts.includes(part))).toBe(true);
      made.push({ crl, asMade: crlDer(crl) });
    }
    const later = start + 2000 * HOUR;
    expect(Buffer.concat(list.encodedAt(new Date(later))).equals(fromScratch(all, later))).toBe(true);
    await list.append([revocations(50)], all.length + 50, new Date(later));
    for (const { crl, asMade } of made) expect(crlDer(crl).equals(asMade)).toBe(true);
  });

  it('makes a CRL openssl reads: every entry, its reason, its number; put together again from the signature alone', async () => {
    const { signer, issuer, publicKey } = testIssuer();
    const fields = { crlNumber: 4242, thisUpdate: new Date(start), nextUpdate: new Date(start + 168 * HOUR) };
    const all = revocations(4000);
    const list = new CrlEntryList();
    await list.append([all.slice(0, 2500), all.slice(2500)], 4000, new Date(start));
    const tbs = crlTbs(issuer, fields, signer.algorithm, list.encodedAt(new Date(start)));
    const signature = signCrlTbs(tbs, signer);
    const crl = crlDer(signedCrl(tbs, signer.algorithm, signature));
    // Signed and written part by part: the signature is over the TBSCertList's bytes, and the CRL is exactly the three elements.
    const tbsBytes = Buffer.concat(tbs.parts);
    expect(tbs.length).toBe(tbsBytes.length);
    expect(verify(signer.digest, tbsBytes, { key: publicKey, dsaEncoding: 'der' }, signature)).toBe(true);
    expect(crl.equals(der.sequence(tbsBytes, signer.algorithm, der.bitString(signature)))).toBe(true);

    // Another process: the same entries encoded by itself, and the signature it was given.
    const again = new CrlEntryList();
    await again.append([all.slice(0, 1000)], 1000, new Date(start));
    await again.append([all.slice(1000)], 4000, new Date(start));
    const theirs = crlTbs(issuer, fields, signer.algorithm, again.encodedAt(new Date(start)));
    expect(crlSignatureValid(theirs, issuer, signature)).toBe(true);
    expect(crlDer(signedCrl(theirs, signer.algorithm, signature)).equals(crl)).toBe(true);
    // One revocation more and the signature no longer fits.
    await again.append([revocations(1)], 4001, new Date(start));
    expect(crlSignatureValid(crlTbs(issuer, fields, signer.algorithm, again.encodedAt(new Date(start))), issuer, signature)).toBe(false);

    const work = tempDir();
    writeFileSync(join(work, 'crl.der'), crl);
    const text = openssl(['crl', '-inform', 'DER', '-in', join(work, 'crl.der'), '-noout', '-text']);
    expect(text.match(/Serial Number: /g)).toHaveLength(4000);
    for (const entry of [all[0]!, all[1]!, all[2999]!]) expect(text).toContain(`Serial Number: ${entry.serial.toUpperCase()}`);
    expect(text).toMatch(/CRL Reason Code: \s*\n\s+Key Compromise/);
    expect(text).toMatch(/X509v3 CRL Number: \s*\n\s+4242/);
  });
});
