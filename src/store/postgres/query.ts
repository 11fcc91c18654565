/**
 * Statements and where they run. Each is named, so each connection parses and plans it
 * once; each lists its columns rather than `*`, so that a later migration adding a column
 * does not invalidate the plans of instances still running the old code.
 */
import type pg from 'pg';

/** A row with its columns by name. */
export type Row = Record<string, unknown>;

/** Where statements run: the pool (a read on any connection) or one transaction's connection. */
export interface Queryable {
  /** The rows a statement returns. */
  rows<R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** How many rows a statement inserted, updated or deleted. */
  changes(sql: string, params?: readonly unknown[]): Promise<number>;
}

const statementNames = new Map<string, string>();

/** The query for `sql` as a named statement. */
export function statement(sql: string, params: readonly unknown[] = []): pg.QueryConfig {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `imprint_${statementNames.size + 1}`;
    statementNames.set(sql, name);
  }
  return { name, text: sql, values: params as unknown[] };
}

/** Builds a statement's numbered parameters ($1, $2, ...) alongside its text. */
export class Params {
  readonly values: unknown[] = [];

  /** The placeholder for `value`. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
