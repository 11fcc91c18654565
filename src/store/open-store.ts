/**
 * Which store an instance runs on: SQLite in its data directory (the embedded default) or
 * PostgreSQL at a URL (several instances on one database). Everything above the store is
 * the same for both.
 */
import { withoutPassword } from './database-url.js';
import { openDatabase, type Durability } from './database.js';
import { migrate } from './migrate.js';
import { SqliteStore } from './sqlite-store.js';
import { leaveCheckpointsToCheckpointer } from './sqlite/lifecycle.js';
import { databasePath } from './wal-checkpoints.js';
import type { Store } from './store.js';

/** Where the fleet is kept. */
export interface StoreLocation {
  readonly dataDir: string;
  /** PostgreSQL's URL; SQLite at DATA/imprint.db when absent. */
  readonly databaseUrl?: string | undefined;
}

/**
 * Who moves a serving process's WAL into the SQLite file, so that its commits need not:
 * this process on a thread of its own, or another process on the same file (a cluster's
 * primary does it for its workers).
 */
export type Checkpoints = 'thread' | 'elsewhere';

/** How a process uses its store. */
export interface StoreOptions {
  /** SQLite only: commits in FULL (power-loss safe) unless a benchmark asks otherwise. */
  readonly durability?: Durability | undefined;
  /** SQLite only, a serving process: who checkpoints the WAL (absent: the commits, as SQLite does by default). */
  readonly backgroundCheckpoints?: Checkpoints | undefined;
}


/** Opens the store, applying pending migrations. */
export async function openStore(location: StoreLocation, options: StoreOptions = {}): Promise<Store> {
  if (location.databaseUrl !== undefined) {
    // Loaded only when asked for: an embedded server never loads the PostgreSQL driver.
    const { PostgresStore } = await import('./postgres-store.js');
    return PostgresStore.open(location.databaseUrl);
  }
  const store = SqliteStore.open(databasePath(location.dataDir), options.durability, { backgroundCheckpoints: options.backgroundCheckpoints === 'thread' });
  if (options.backgroundCheckpoints === 'elsewhere') leaveCheckpointsToCheckpointer(store.db);
  return store;
}

/** Applies pending migrations and returns their versions. */
export async function migrateStore(location: StoreLocation): Promise<number[]> {
  if (location.databaseUrl !== undefined) {
    const { migratePostgres } = await import('./postgres-store.js');
    return migratePostgres(location.databaseUrl);
  }
  const db = openDatabase(databasePath(location.dataDir), 'full');
  try {
    return migrate(db);
  } finally {
    db.close();
  }
}

/** The store as logs and banners name it, without a password. */
export function describeStore(location: StoreLocation): { readonly kind: 'sqlite' | 'postgres'; readonly path: string } {
  return location.databaseUrl === undefined
    ? { kind: 'sqlite', path: databasePath(location.dataDir) }
    : { kind: 'postgres', path: withoutPassword(location.databaseUrl) };
}
