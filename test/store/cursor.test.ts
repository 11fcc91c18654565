/**
 * Listing cursors are opaque and authenticated: the codec accepts only what its own key
 * made for the same listing, and the SQLite store keeps one key per database (migration 5),
 * shared by every connection to it and different from any other database's.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listPage } from '../../src/enrollment/paging.js';
import { ImprintError } from '../../src/errors.js';
import { CURSOR_KEY_SETTING, CursorCodec } from '../../src/store/cursor.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { InvalidCursorError } from '../../src/enrollment/model.js';
import { tempDir } from '../helpers/openssl.js';

const codec = new CursorCodec(randomBytes(32));

/** The cursor with one bit of its decoded byte `index` flipped. */
function flipped(cursor: string, index: number): string {
  const bytes = Buffer.from(cursor, 'base64url');
  bytes[index]! ^= 0x01;
  return bytes.toString('base64url');
}

describe('CursorCodec', () => {
  it.each([0, 1, 2, 1000, 2 ** 31, Number.MAX_SAFE_INTEGER])('round-trips position %s, as 34 URL-safe characters', (position) => {
    const cursor = codec.encode('devices', position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]{34}$/);
    expect(codec.decode('devices', cursor)).toBe(position);
  });

  it('refuses every single flipped bit of every byte', () => {
    const cursor = codec.encode('tokens', 12345);
    const length = Buffer.from(cursor, 'base64url').length;
    for (let index = 0; index < length; index++) {
      for (let bit = 0; bit < 8; bit++) {
        const bytes = Buffer.from(cursor, 'base64url');
        bytes[index]! ^= 1 << bit;
        expect(codec.decode('tokens', bytes.toString('base64url')), `byte ${index} bit ${bit}`).toBeUndefined();
      }
    }
  });

  it.each([
    { name: 'cursor/other-key', cursor: () => new CursorCodec(randomBytes(32)).encode('devices', 7) },
    { name: 'cursor/other-listing', cursor: () => codec.encode('tokens', 7) },
    { name: 'cursor/old-format-r1', cursor: () => Buffer.from('r1').toString('base64url') },
    { name: 'cursor/old-format-r7', cursor: () => Buffer.from('r7').toString('base64url') },
    { name: 'cursor/empty', cursor: () => '' },
    { name: 'cursor/garbage', cursor: () => 'garbage' },
    { name: 'cursor/padded', cursor: () => `${codec.encode('devices', 7)}==` },
    { name: 'cursor/base64-not-url', cursor: () => codec.encode('devices', 7).replace(/[A-Za-z0-9]$/, '+') },
    { name: 'cursor/truncated', cursor: () => codec.encode('devices', 7).slice(0, -1) },
    { name: 'cursor/extended', cursor: () => `${codec.encode('devices', 7)}A` },
    { name: 'cursor/tag-zeroed', cursor: () => Buffer.concat([Buffer.from(codec.encode('devices', 7), 'base64url').subarray(0, 9), Buffer.alloc(16)]).toString('base64url') },
    { name: 'cursor/control', cursor: () => '\u0000'.repeat(34) },
  ])('$name is refused', ({ cursor }) => {
    expect(codec.decode('devices', cursor())).toBeUndefined();
  });

  it('one spelling per cursor: a last character differing only in unused bits is refused', () => {
    const cursor = codec.encode('devices', 7);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(cursor.at(-1)!);
    const twin = cursor.slice(0, -1) + alphabet[last ^ 0b0001]!;
    expect(Buffer.from(twin, 'base64url').equals(Buffer.from(cursor, 'base64url'))).toBe(true);
    expect(codec.decode('devices', twin)).toBeUndefined();
  });

  it('refuses short keys, missing keys and positions it cannot name', () => {
    expect(() => new CursorCodec(randomBytes(16))).toThrow(/at least 32 bytes/);
    expect(() => CursorCodec.fromHex(undefined)).toThrow(/cursor_key/);
    expect(() => CursorCodec.fromHex('xyz')).toThrow(/cursor_key/);
    expect(() => codec.encode('devices', -1)).toThrow(RangeError);
    expect(() => codec.encode('devices', 1.5)).toThrow(RangeError);
    expect(() => codec.encode('devices', Number.MAX_SAFE_INTEGER + 1)).toThrow(RangeError);
  });
});

describe('SqliteStore cursors', () => {
  const dirs: string[] = [];
  const stores: SqliteStore[] = [];
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh database with `count` unused tokens, written behind the store's back so the test does not depend on the token API. */
  function database(count: number): string {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'imprint.db');
    stores.push(SqliteStore.open(path));
    const db = new Database(path);
    const insert = db.prepare(`INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at)
                               VALUES (?, ?, 'cursor-test', NULL, ?, 'cli:test', ?)`);
    for (let i = 0; i < count; i++) insert.run(`tok_${i}`, randomBytes(32), Date.now(), Date.now() + 3_600_000);
    db.close();
    return path;
  }
  const open = (path: string): SqliteStore => {
    const store = SqliteStore.open(path);
    stores.push(store);
    return store;
  };
  const list = (store: SqliteStore, cursor?: string) => listPage(store.listTokens({ limit: 2, now: new Date(), ...(cursor === undefined ? {} : { cursor }) }));

  it('migration 5 gives each database its own 32-byte key', () => {
    const keyOf = (path: string) => {
      const db = new Database(path, { readonly: true });
      try {
        return (db.prepare('SELECT value FROM settings WHERE key = ?').get(CURSOR_KEY_SETTING) as { value: string }).value;
      } finally {
        db.close();
      }
    };
    const a = keyOf(database(0));
    const b = keyOf(database(0));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
  });

  it('pages through every row once; a cursor works on another connection and after reopening', async () => {
    const path = database(5);
    const first = await list(open(path));
    expect(first.items.map((token) => token.id)).toEqual(['tok_0', 'tok_1']);
    expect(first.nextCursor).toMatch(/^[A-Za-z0-9_-]{34}$/);
    const second = await list(open(path), first.nextCursor!);
    expect(second.items.map((token) => token.id)).toEqual(['tok_2', 'tok_3']);
    const third = await list(open(path), second.nextCursor!);
    expect(third).toEqual({ items: [expect.objectContaining({ id: 'tok_4' })], nextCursor: null });
  });

  it.each([
    { name: 'cursor/flipped-position-byte', cursor: (own: string) => flipped(own, 8) },
    { name: 'cursor/flipped-tag-byte', cursor: (own: string) => flipped(own, 20) },
    { name: 'cursor/flipped-version-byte', cursor: (own: string) => flipped(own, 0) },
    { name: 'cursor/hand-made-r1', cursor: () => Buffer.from('r1').toString('base64url') },
    // Right key, right row number, but made for the devices listing.
    { name: 'cursor/other-listing', cursor: (_own: string, store: SqliteStore) => codecOf(store).encode('devices', 2) },
  ])('$name is the store\'s InvalidCursorError and bad_request at the service edge', async ({ cursor }) => {
    const path = database(3);
    const store = open(path);
    const own = (await list(store)).nextCursor!;
    const forged = cursor(own, store);
    await expect(store.listTokens({ limit: 2, now: new Date(), cursor: forged })).rejects.toBeInstanceOf(InvalidCursorError);
    await expect(list(store, forged)).rejects.toMatchObject({ code: 'bad_request' });
    await expect(list(store, forged)).rejects.toBeInstanceOf(ImprintError);
  });

  it('a cursor from another data directory is refused, though it names a row that exists here', async () => {
    const here = open(database(4));
    const there = open(database(4));
    const foreign = (await list(there)).nextCursor!;
    expect((await list(here)).nextCursor).not.toBe(foreign);
    await expect(list(here, foreign)).rejects.toMatchObject({ code: 'bad_request' });
  });
});

/** The codec a store holds, for forging a cursor of another listing under the right key. */
function codecOf(store: SqliteStore): CursorCodec {
  return (store as unknown as { cursors: CursorCodec }).cursors;
}
