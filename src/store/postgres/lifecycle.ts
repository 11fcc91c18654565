/** PostgreSQL's lifecycle: backups are PostgreSQL's own; closing commits what is queued first. */
import type { StoreLifecycle } from '../store.js';
import type { Postgres } from './connection.js';
import type { GroupCommit } from './group-commit.js';
import type { RevocationNotifications } from './notifications.js';

/** Backup and close. */
export class PostgresLifecycle implements StoreLifecycle {
  constructor(
    private readonly db: Postgres,
    private readonly groupCommit: GroupCommit,
    private readonly notifications: RevocationNotifications,
  ) {}

  async backup(): Promise<{ readonly bytes: number }> {
    throw new Error(
      'imprint backup copies SQLite stores only: back up PostgreSQL with its own tools (pg_dump, or base backups with WAL archiving for point-in-time recovery)',
    );
  }

  /** Commits the writes still queued, then closes every connection. */
  async close(): Promise<void> {
    await this.notifications.close();
    await this.groupCommit.drain();
    await this.db.end();
  }
}
