/**
 * The store backends the contract suite runs against: each entry opens a new, empty,
 * migrated store of its kind.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../../../src/store/postgres-store.js';
import { SqliteStore } from '../../../src/store/sqlite-store.js';
import type { Store } from '../../../src/store/store.js';
import { freshDatabaseUrl } from '../../helpers/postgres.js';

/** A backend under test. */
export interface StoreBackend {
  readonly name: 'sqlite' | 'postgres';
  /** A new, empty store; the caller closes it. */
  open(): Promise<Store>;
}

/** This process's SQLite files, in one directory removed when the process exits. */
let sqliteDir: string | undefined;

function sqliteFile(): string {
  if (sqliteDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'imprint-contract-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    sqliteDir = dir;
  }
  return join(sqliteDir, `${randomUUID()}.db`);
}

/** Every backend: the contract suite runs each test once per entry. */
export const STORES: readonly StoreBackend[] = [
  { name: 'sqlite', open: async () => SqliteStore.open(sqliteFile()) },
  // A database of its own on the test run's server (test/setup/postgres.ts).
  { name: 'postgres', open: async () => PostgresStore.open(await freshDatabaseUrl()) },
];
