/**
 * The PostgreSQL store: several imprint instances, each with its own pool, sharing one
 * database. Each role is a part of its own in postgres/; this file puts them together.
 * Write transactions hold one advisory lock from their first statement to their commit
 * (postgres/locks.ts says why), and the writes that come in floods share transactions
 * (postgres/group-commit.ts).
 */
import { compose } from './compose.js';
import { PostgresAudit } from './postgres/audit.js';
import { connectClient, Postgres } from './postgres/connection.js';
import { PostgresCrls } from './postgres/crls.js';
import { GroupCommit } from './postgres/group-commit.js';
import { PostgresInventory } from './postgres/inventory.js';
import { PostgresLifecycle } from './postgres/lifecycle.js';
import { Listings } from './postgres/listing.js';
import { migrate } from './postgres/migrate.js';
import { RevocationNotifications } from './postgres/notifications.js';
import { PostgresOperators } from './postgres/operators.js';
import { PostgresRedemption } from './postgres/redemption.js';
import { PostgresRevocation } from './postgres/revocation.js';
import { PostgresSettings } from './postgres/settings.js';
import { PostgresTokens } from './postgres/tokens.js';
import type { Store } from './store.js';

/** Applies pending migrations to the database at `url` (`imprint migrate`); returns their versions. */
export async function migratePostgres(url: string): Promise<number[]> {
  const client = await connectClient(url);
  try {
    return await migrate(client);
  } finally {
    await client.end();
  }
}

/** PostgreSQL implementation of Store. */
export type PostgresStore = Store;

/** Opens PostgreSQL stores. */
export const PostgresStore = {
  /** Opens a store on the database at `url`, applying pending migrations first. */
  async open(url: string): Promise<PostgresStore> {
    await migratePostgres(url);
    const db = Postgres.connect(url);
    try {
      const listings = await Listings.open(db);
      // Enrollments, renewals and refusals' audit events: the writes that come in floods.
      const groupCommit = new GroupCommit(db);
      const notifications = new RevocationNotifications(url);
      db.revocationCommitted = () => notifications.committedHere();
      return compose(
        new PostgresSettings(db),
        new PostgresTokens(db, listings),
        new PostgresRedemption(db, groupCommit),
        new PostgresInventory(db, listings),
        new PostgresRevocation(db, notifications),
        new PostgresCrls(db),
        new PostgresOperators(db),
        new PostgresAudit(db, groupCommit, listings),
        new PostgresLifecycle(db, groupCommit, notifications),
      );
    } catch (error) {
      await db.end();
      throw error;
    }
  },
};
