/** Looks at a data directory's SQLite file from a second connection, as an auditor would. */
import Database from 'better-sqlite3';
import { join } from 'node:path';

/** Everything but the audit log, to assert that a refusal changed nothing. */
export function snapshot(dataDir: string): { state: string; auditEvents: number } {
  const db = new Database(join(dataDir, 'imprint.db'), { readonly: true });
  try {
    const state = JSON.stringify({
      devices: db.prepare('SELECT * FROM devices ORDER BY id').all(),
      certificates: db.prepare('SELECT serial, status, device_id, revoked_at FROM certificates ORDER BY serial').all(),
      tokens: db.prepare('SELECT id, used_at, revoked_at, csr_sha256, serial FROM tokens ORDER BY id').all(),
    });
    const { n } = db.prepare('SELECT count(*) AS n FROM audit_events').get() as { n: number };
    return { state, auditEvents: n };
  } finally {
    db.close();
  }
}

/** Runs one read-only query against a data directory's database. */
export function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(dataDir, 'imprint.db'), { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Writes the database behind imprint's back, as an attacker with file access would. */
export function execute(dataDir: string, sql: string, ...params: unknown[]): void {
  const db = new Database(join(dataDir, 'imprint.db'));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}
