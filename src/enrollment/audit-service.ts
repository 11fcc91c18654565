/**
 * The audit log: who did what, when, from where, with what outcome. Each event carries the
 * hash of the one before it, so editing or deleting a row breaks the chain from there on.
 */
import { ImprintError } from '../errors.js';
import { auditFields, auditHash, GENESIS_HASH } from '../store/audit-hash.js';
import type { AuditEvent, AuditFilter } from './model.js';
import type { AuditStore } from '../store/store.js';
import { checkLimit, listPage } from './paging.js';

/** An audit event as shown to operators. */
export interface AuditEventView {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly outcome: string;
  readonly source: string | null;
  readonly tokenId: string | null;
  readonly deviceId: string | null;
  readonly serial: string | null;
  readonly detail: Record<string, unknown> | null;
}

/** The result of walking the chain. */
export interface AuditVerification {
  readonly ok: boolean;
  readonly checked: number;
  /**
   * The newest event's hash. The chain alone cannot show that events were cut off its end;
   * an operator who keeps this value elsewhere can pass it back later to prove they were not.
   */
  readonly head: string;
  /** The first event that does not fit the chain, and why. */
  readonly problem?: { readonly id: number; readonly reason: string };
}

const view = (event: AuditEvent): AuditEventView => ({ id: event.id, at: event.at.toISOString(), ...auditFields(event) });

const VERIFY_BATCH = 5000;

/** Lists and verifies the audit log. */
export class AuditService {
  constructor(private readonly store: AuditStore) {}

  /** Events from `since` (ISO time), oldest first, a page at a time. */
  async list(query: { since?: string | undefined; cursor?: string | undefined; limit?: number | undefined }): Promise<{ items: AuditEventView[]; nextCursor: string | null }> {
    const since = query.since === undefined ? undefined : new Date(query.since);
    if (since && Number.isNaN(since.getTime())) throw new ImprintError('bad_request', 'since must be an ISO 8601 time');
    const page = await listPage(this.store.pageAudit({ since, cursor: query.cursor, limit: checkLimit(query.limit) }));
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  /** Events newest first, filtered by actor, device id and action (each exact), a page at a time. */
  async browse(query: AuditFilter & { cursor?: string | undefined; limit?: number | undefined }): Promise<{ items: AuditEventView[]; nextCursor: string | null }> {
    const page = await listPage(this.store.browseAudit({ ...query, limit: checkLimit(query.limit) }));
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  /**
   * Recomputes every hash and link; the first break is reported. With `knownHead` (a head
   * recorded earlier), the chain must still contain that event, so events cut off the end
   * since then are detected too.
   */
  async verify(knownHead?: string): Promise<AuditVerification> {
    let previous = GENESIS_HASH;
    let afterId = 0;
    let checked = 0;
    let sawKnownHead = knownHead === undefined;
    for (;;) {
      const events = await this.store.listAudit({ afterId, limit: VERIFY_BATCH });
      for (const event of events) {
        if (event.prevHash !== previous) {
          return { ok: false, checked, head: previous, problem: { id: event.id, reason: 'does not follow the event before it (an event was deleted or edited)' } };
        }
        if (auditHash(event.prevHash, event) !== event.hash) {
          return { ok: false, checked, head: previous, problem: { id: event.id, reason: 'its content does not match its hash (it was edited)' } };
        }
        previous = event.hash;
        afterId = event.id;
        checked++;
        if (event.hash === knownHead) sawKnownHead = true;
      }
      if (events.length < VERIFY_BATCH) break;
    }
    if (!sawKnownHead) {
      return { ok: false, checked, head: previous, problem: { id: afterId, reason: `the recorded head ${knownHead} is no longer in the log (events were deleted from its end)` } };
    }
    return { ok: true, checked, head: previous };
  }
}
