/** SQLite audit log: events appended through the group commit, read in id order or newest first. */
import type Database from 'better-sqlite3';
import { InvalidCursorError, type AuditEvent, type AuditEventInput, type AuditFilter, type Page } from '../../enrollment/model.js';
import type { GroupCommit } from '../group-commit.js';
import type { AuditStore } from '../store.js';
import type { Listings } from './listings.js';
import { auditFromRow, type Row } from '../rows.js';
import type { Writer } from './writer.js';

/** The audit_events table. */
export class SqliteAudit implements AuditStore {
  private readonly listStatement;
  /** The console's statements, one per combination of filters, so each is planned against its index. */
  private readonly browseStatements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    /** Refusals' audit events come in floods, like the enrollments they refuse. */
    private readonly groupCommit: GroupCommit,
    private readonly writer: Writer,
    private readonly listings: Listings,
  ) {
    this.listStatement = db.prepare('SELECT * FROM audit_events WHERE id > ? AND at >= ? ORDER BY id LIMIT ?');
  }

  async appendAudit(event: AuditEventInput): Promise<void> {
    await this.groupCommit.run(() => this.writer.insertAudit(event));
  }

  async pageAudit(query: { since?: Date | undefined; cursor?: string | undefined; limit: number }): Promise<Page<AuditEvent>> {
    const afterId = this.listings.position('audit_events', query.cursor);
    const events = await this.listAudit({ since: query.since, afterId, limit: query.limit + 1 });
    const items = events.slice(0, query.limit);
    const last = items[items.length - 1];
    return { items, nextCursor: events.length > query.limit && last ? this.listings.cursors.encode('audit_events', last.id) : null };
  }

  async listAudit(query: { since?: Date | undefined; afterId?: number | undefined; limit: number }): Promise<AuditEvent[]> {
    const rows = this.listStatement.all(query.afterId ?? 0, query.since?.getTime() ?? 0, query.limit) as Row[];
    return rows.map(auditFromRow);
  }

  async browseAudit(query: AuditFilter & { limit: number; cursor?: string | undefined }): Promise<Page<AuditEvent>> {
    const before = query.cursor === undefined ? Number.MAX_SAFE_INTEGER : this.listings.cursors.decode('audit_events.newest', query.cursor);
    if (before === undefined) throw new InvalidCursorError();
    const filters = (['actor', 'deviceId', 'action'] as const).filter((field) => query[field] !== undefined);
    const columns = { actor: 'actor', deviceId: 'device_id', action: 'action' } as const;
    const key = filters.join(',');
    let statement = this.browseStatements.get(key);
    if (!statement) {
      const where = ['id < @before', ...filters.map((field) => `${columns[field]} = @${field}`)].join(' AND ');
      statement = this.db.prepare(`SELECT * FROM audit_events WHERE ${where} ORDER BY id DESC LIMIT @limit`);
      this.browseStatements.set(key, statement);
    }
    const rows = statement.all({
      before,
      actor: query.actor ?? null,
      deviceId: query.deviceId ?? null,
      action: query.action ?? null,
      limit: query.limit + 1,
    }) as Row[];
    const items = rows.slice(0, query.limit).map(auditFromRow);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > query.limit && last ? this.listings.cursors.encode('audit_events.newest', last.id) : null };
  }
}
