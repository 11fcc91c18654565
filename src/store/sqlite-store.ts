/**
 * The embedded store: one SQLite file. Every domain operation is one synchronous
 * better-sqlite3 transaction (BEGIN IMMEDIATE when it writes, so the CLI and the server
 * serialise cleanly); prepared statements are made once. Each role is a part of its own
 * in sqlite/, all on one connection; this file puts them together.
 */
import type Database from 'better-sqlite3';
import type { CursorCodec } from './cursor.js';
import { openDatabase, type Durability } from './database.js';
import { GroupCommit } from './group-commit.js';
import { migrate } from './migrate.js';
import { SqliteAudit } from './sqlite/audit.js';
import { SqliteCrls } from './sqlite/crls.js';
import { SqliteInventory } from './sqlite/inventory.js';
import { SqliteLifecycle } from './sqlite/lifecycle.js';
import { Listings } from './sqlite/listings.js';
import { SqliteOperators } from './sqlite/operators.js';
import { prepareSharedReads } from './sqlite/reads.js';
import { SqliteRedemption } from './sqlite/redemption.js';
import { SqliteRevocation } from './sqlite/revocation.js';
import { SqliteSettings } from './sqlite/settings.js';
import { SqliteTokens } from './sqlite/tokens.js';
import { Writer } from './sqlite/writer.js';
import { compose } from './compose.js';
import type { Store } from './store.js';

/** SQLite implementation of Store, with its connection and cursor codec (tests reach for both). */
export type SqliteStore = Store & { readonly db: Database.Database; readonly cursors: CursorCodec };

/** Opens SQLite stores. */
export const SqliteStore = {
  /** Opens the database file, applying pending migrations. */
  open(path: string, durability: Durability = 'full', options: { backgroundCheckpoints?: boolean | undefined } = {}): SqliteStore {
    const db = openDatabase(path, durability);
    migrate(db);
    const listings = new Listings(db);
    const reads = prepareSharedReads(db);
    const writer = new Writer(db);
    // Enrollments, renewals and refusals' audit events: the writes that come in floods.
    const groupCommit = new GroupCommit(db, writer.batchScope);
    const store = compose(
      new SqliteSettings(db),
      new SqliteTokens(db, writer, listings),
      new SqliteRedemption(db, groupCommit, reads, writer),
      new SqliteInventory(db, reads, listings),
      new SqliteRevocation(db, reads, writer),
      new SqliteCrls(db),
      new SqliteOperators(db, writer),
      new SqliteAudit(db, groupCommit, writer, listings),
      new SqliteLifecycle(db, groupCommit, options.backgroundCheckpoints ? path : undefined),
    );
    return Object.assign(store, { db, cursors: listings.cursors });
  },
};
