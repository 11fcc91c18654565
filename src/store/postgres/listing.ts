/**
 * Keyset listings and their cursors. A cursor names a row's position (a `pos` identity
 * value, an audit id), authenticated under the database's cursor key with the same codec
 * and listing names as SQLite, so a page starts only where one this database gave out
 * ended.
 */
import { InvalidCursorError, type Page } from '../../enrollment/model.js';
import { CURSOR_KEY_SETTING, CursorCodec } from '../cursor.js';
import { Params, type Queryable, type Row } from './query.js';

/** A LIKE pattern (escaped with '\') that matches any text containing `q`. */
export const containing = (q: string): string => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** The tables listed a page at a time in position order. */
export type PagedTable = 'devices' | 'certificates' | 'tokens';

/** Listing cursors and position pages on one pool. */
export class Listings {
  private constructor(
    private readonly db: Queryable,
    readonly cursors: CursorCodec,
  ) {}

  /** The listings of `db`, under the cursor key the migrations made. */
  static async open(db: Queryable): Promise<Listings> {
    const [row] = await db.rows<{ value: string }>('SELECT value FROM settings WHERE key = $1', [CURSOR_KEY_SETTING]);
    return new Listings(db, CursorCodec.fromHex(row?.value));
  }

  /** The position a cursor of `listing` names, 0 without one; throws InvalidCursorError for one not ours. */
  position(listing: string, cursor: string | undefined): number {
    if (cursor === undefined) return 0;
    const position = this.cursors.decode(listing, cursor);
    if (position === undefined) throw new InvalidCursorError();
    return position;
  }

  /**
   * Keyset pagination by position: O(limit) per page. `where` adds conditions whose
   * placeholders come from `params`; one row more than the page tells whether another follows.
   */
  async page<T>(
    table: PagedTable,
    columns: string,
    where: readonly string[],
    params: Params,
    query: { limit: number; cursor?: string | undefined },
    fromRow: (row: Row) => T,
  ): Promise<Page<T>> {
    const conditions = [`pos > ${params.add(this.position(table, query.cursor))}`, ...where].join(' AND ');
    const limit = params.add(query.limit + 1);
    const rows = await this.db.rows(`SELECT pos AS _pos, ${columns} FROM ${table} WHERE ${conditions} ORDER BY pos LIMIT ${limit}`, params.values);
    return this.pageOf(table, rows, query.limit, (row) => row._pos as number, fromRow);
  }

  /** A page of `rows` fetched with one row of lookahead; the cursor names the last item's `key`. */
  pageOf<T>(listing: string, rows: readonly Row[], limit: number, key: (row: Row) => number, fromRow: (row: Row) => T): Page<T> {
    const items = rows.slice(0, limit);
    return { items: items.map(fromRow), nextCursor: rows.length > limit ? this.cursors.encode(listing, key(items[items.length - 1]!)) : null };
  }
}
