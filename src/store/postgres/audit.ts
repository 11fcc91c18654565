/** PostgreSQL audit log: events appended through the group commit, read in id order or newest first. */
import type { AuditEvent, AuditEventInput, AuditFilter, Page } from '../../enrollment/model.js';
import type { AuditStore } from '../store.js';
import type { Postgres } from './connection.js';
import type { GroupCommit } from './group-commit.js';
import type { Listings } from './listing.js';
import { Params } from './query.js';
import { AUDIT_COLUMNS } from './columns.js';
import { auditFromRow } from '../rows.js';

const LIST = `SELECT ${AUDIT_COLUMNS} FROM audit_events WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3`;
/** The filters browseAudit takes, and their columns (each read from its index with id). */
const FILTER_COLUMNS = { actor: 'actor', deviceId: 'device_id', action: 'action' } as const;

/** The audit_events table. */
export class PostgresAudit implements AuditStore {
  constructor(
    private readonly db: Postgres,
    /** Refusals' audit events come in floods, like the enrollments they refuse. */
    private readonly groupCommit: GroupCommit,
    private readonly listings: Listings,
  ) {}

  async appendAudit(event: AuditEventInput): Promise<void> {
    await this.groupCommit.run(async (tx) => tx.appendAudit(event));
  }

  async pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>> {
    const afterId = this.listings.position('audit_events', query.cursor);
    const rows = await this.db.rows(LIST, [afterId, query.since?.getTime() ?? 0, query.limit + 1]);
    return this.listings.pageOf('audit_events', rows, query.limit, (row) => row.id as number, auditFromRow);
  }

  async listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]> {
    const rows = await this.db.rows(LIST, [query.afterId ?? 0, query.since?.getTime() ?? 0, query.limit]);
    return rows.map(auditFromRow);
  }

  async browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>> {
    const params = new Params();
    const where: string[] = [];
    if (query.cursor !== undefined) where.push(`id < ${params.add(this.listings.position('audit_events.newest', query.cursor))}`);
    for (const field of ['actor', 'deviceId', 'action'] as const) {
      const value = query[field];
      if (value !== undefined) where.push(`${FILTER_COLUMNS[field]} = ${params.add(value)}`);
    }
    const rows = await this.db.rows(
      `SELECT ${AUDIT_COLUMNS} FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${params.add(query.limit + 1)}`,
      params.values,
    );
    return this.listings.pageOf('audit_events.newest', rows, query.limit, (row) => row.id as number, auditFromRow);
  }
}
