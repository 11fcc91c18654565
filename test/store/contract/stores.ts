/**
 * The store backends the contract suite runs against: each entry opens a new, empty,
 * migrated store of its kind.
 */
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

/** `store`, whose close() also removes `dir` (the worker processes end without an exit event). */
function removedOnClose(store: Store, dir: string): Store {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'close') {
        return async () => {
          await target.close();
          rmSync(dir, { recursive: true, force: true });
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A SQLite store in a directory of its own. */
async function openSqlite(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'imprint-contract-'));
  return removedOnClose(await SqliteStore.open(join(dir, 'imprint.db')), dir);
}

/** Every backend: the contract suite runs each test once per entry. */
export const STORES: readonly StoreBackend[] = [
  { name: 'sqlite', open: openSqlite },
  // A database of its own on the test run's server (test/setup/postgres.ts).
  { name: 'postgres', open: async () => PostgresStore.open(await freshDatabaseUrl()) },
];
