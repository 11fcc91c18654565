/**
 * The revoked certificates a CRL lists, read in pages: more than a page of them, many
 * revoked under one sequence number (one revocation of many certificates), expired ones
 * among them, come out in revocation order, each once, in pages of a bounded size, for a
 * whole range or part of one, on both stores; and the serials revoked since a sequence, which
 * every process reads after a revocation, each once in sequence order, the expired ones too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { RevokedEntry } from '../../src/enrollment/model.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { freshDatabaseUrl, query } from '../helpers/postgres.js';

const COUNT = 25_000;
/** Sequences 1, 2 and 3 revoke 12,000, 10,000 and 3,000 certificates: pages end inside a sequence. */
const SEQ_SQL = (i: string) => `CASE WHEN ${i} <= 12000 THEN 1 WHEN ${i} <= 22000 THEN 2 ELSE 3 END`;
const NOW = 1_800_000_000_000;

/** Certificate i as inserted: a serial whose order is not i's, every fifth expired, every third with no reason. */
function entry(i: number): RevokedEntry & { seq: number } {
  const scrambled = (i * 2654435761) % 4294967296;
  return {
    seq: i <= 12000 ? 1 : i <= 22000 ? 2 : 3,
    serial: scrambled.toString(16).padStart(8, '0') + i.toString(16).padStart(24, '0'),
    revokedAt: 1_700_000_000_000 + i,
    reason: i % 3 === 0 ? 'unspecified' : 'keyCompromise',
    notAfter: i % 5 === 0 ? 1000 : NOW + i,
  };
}

/** The entries listed for (afterSeq, upToSeq] at NOW, in revocation order. */
function expected(afterSeq: number, upToSeq: number): RevokedEntry[] {
  return Array.from({ length: COUNT }, (_, i) => entry(i + 1))
    .filter((e) => e.seq > afterSeq && e.seq <= upToSeq && e.notAfter > NOW)
    .sort((a, b) => a.seq - b.seq || (a.serial < b.serial ? -1 : 1))
    .map(({ seq: _, ...listed }) => listed);
}

const backends: { name: string; open(): Promise<Store> }[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'imprint-revoked-pages-'));
      const file = join(dir, 'imprint.db');
      const store = await SqliteStore.open(file);
      const db = new Database(file);
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${COUNT})
         INSERT INTO certificates (serial, kind, subject, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, revocation_seq, der)
         SELECT printf('%08x%024x', (i * 2654435761) % 4294967296, i), 'device', 'pages-' || i, printf('%064x', i), 0,
                CASE WHEN i % 5 = 0 THEN 1000 ELSE ${NOW} + i END, 0, 'revoked', 1700000000000 + i,
                CASE WHEN i % 3 = 0 THEN NULL ELSE 'keyCompromise' END, ${SEQ_SQL('i')}, x'00' FROM n`,
      ).run();
      db.close();
      const close = store.close.bind(store);
      return Object.assign(store, { close: async () => (await close(), rmSync(dir, { recursive: true, force: true })) });
    },
  },
  {
    name: 'postgres',
    async open() {
      const url = await freshDatabaseUrl();
      const store = await PostgresStore.open(url);
      await query(
        url,
        `INSERT INTO certificates (serial, kind, subject, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, revocation_seq, der)
         SELECT lpad(to_hex((i::bigint * 2654435761) % 4294967296), 8, '0') || lpad(to_hex(i), 24, '0'), 'device', 'pages-' || i, lpad(to_hex(i), 64, '0'), 0,
                CASE WHEN i % 5 = 0 THEN 1000 ELSE ${NOW} + i END, 0, 'revoked', 1700000000000 + i,
                CASE WHEN i % 3 = 0 THEN NULL ELSE 'keyCompromise' END, ${SEQ_SQL('i')}, '\\x00'::bytea
         FROM generate_series(1, ${COUNT}) AS i`,
      );
      return store;
    },
  },
];

describe.each(backends)('$name store: revoked certificates in pages', (backend) => {
  it('lists more than a page, one sequence across pages, in revocation order, each once', async () => {
    const store = await backend.open();
    try {
      const list = async (afterSeq: number, upToSeq: number) => {
        const pages: (readonly RevokedEntry[])[] = [];
        for await (const page of store.listRevoked(new Date(NOW), afterSeq, upToSeq)) pages.push(page);
        return pages;
      };
      const all = await list(0, 3);
      expect(all.length).toBeGreaterThan(1);
      for (const page of all) expect(page.length).toBeLessThanOrEqual(10_000);
      expect(all.flat()).toEqual(expected(0, 3));
      for (const [after, upTo] of [[0, 1], [1, 2], [1, 3], [2, 3], [3, 3]] as const) expect((await list(after, upTo)).flat()).toEqual(expected(after, upTo));
    } finally {
      await store.close();
    }
  }, 60_000);

  it('lists the serials revoked since a sequence across pages, in sequence order, each once', async () => {
    const store = await backend.open();
    try {
      const all = Array.from({ length: COUNT }, (_, i) => entry(i + 1));
      const seqOf = new Map(all.map((e) => [e.serial, e.seq]));
      for (const after of [0, 1, 2, 3]) {
        const serials = await store.revokedSince(after);
        const seqs = serials.map((serial) => seqOf.get(serial)!);
        expect(seqs.every((seq, i) => seq > after && (i === 0 || seq >= seqs[i - 1]!))).toBe(true);
        expect([...serials].sort()).toEqual(all.filter((e) => e.seq > after).map((e) => e.serial).sort());
      }
    } finally {
      await store.close();
    }
  }, 60_000);
});
