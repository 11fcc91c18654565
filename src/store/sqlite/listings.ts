/**
 * Keyset listings and their cursors. A cursor names a row's position (a rowid, an audit
 * id), authenticated under the database's cursor key (migration 5), so a page starts only
 * where one this database gave out ended.
 */
import type Database from 'better-sqlite3';
import { InvalidCursorError, type Page } from '../../enrollment/model.js';
import { CURSOR_KEY_SETTING, CursorCodec } from '../cursor.js';
import type { Row } from '../rows.js';

/** A LIKE pattern (escaped with '\') that matches any text containing `q`. */
export const containing = (q: string): string => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Listing cursors and rowid pages on one connection. */
export class Listings {
  readonly cursors: CursorCodec;

  constructor(private readonly db: Database.Database) {
    const cursorKey = db.prepare('SELECT value FROM settings WHERE key = ?').get(CURSOR_KEY_SETTING) as { value: string } | undefined;
    this.cursors = CursorCodec.fromHex(cursorKey?.value);
  }

  /** The position a cursor of `listing` names, 0 without one; throws InvalidCursorError for one not ours. */
  position(listing: string, cursor: string | undefined): number {
    if (cursor === undefined) return 0;
    const position = this.cursors.decode(listing, cursor);
    if (position === undefined) throw new InvalidCursorError();
    return position;
  }

  /** Keyset pagination by rowid: stable under concurrent inserts, O(limit) per page. */
  page<T>(
    table: 'devices' | 'certificates' | 'tokens',
    where: string[],
    query: { limit: number; cursor?: string | undefined },
    fromRow: (row: Row) => T,
    params: Record<string, unknown>,
  ): Page<T> {
    const conditions = ['rowid > @after', ...where].join(' AND ');
    const rows = this.db
      .prepare(`SELECT rowid AS _rowid, * FROM ${table} WHERE ${conditions} ORDER BY rowid LIMIT @limit`)
      .all({ ...params, after: this.position(table, query.cursor), limit: query.limit + 1 }) as Row[];
    const more = rows.length > query.limit;
    const items = rows.slice(0, query.limit);
    return { items: items.map(fromRow), nextCursor: more ? this.cursors.encode(table, items[items.length - 1]!._rowid as number) : null };
  }
}
