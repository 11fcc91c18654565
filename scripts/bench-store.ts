/**
 * Shapes a benchmark data directory's database behind the server's back: a fleet of
 * pre-existing devices with certificates, and a mass revocation for the CRL figure.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';

const CHUNK = 100_000;

/**
 * Adds `count` active devices, each with one certificate row (the same DER, unique serial
 * and key hash), in chunks; `onProgress` gets the number written so far.
 */
export function prefillDevices(dataDir: string, count: number, der: Buffer, onProgress: (done: number) => void): void {
  const db = new Database(join(dataDir, 'imprint.db'));
  try {
    db.pragma('synchronous = OFF'); // a bulk load that is not measured
    const now = Date.now();
    const devices = db.prepare(`WITH RECURSIVE n(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM n WHERE i < @to)
      INSERT INTO devices (id, status, enrolled_at, updated_at, current_serial)
      SELECT printf('prefill-%08d', i), 'active', @now, @now, printf('%032x', i) FROM n`);
    const certificates = db.prepare(`WITH RECURSIVE n(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM n WHERE i < @to)
      INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after, issued_at, status, der)
      SELECT printf('%032x', i), 'device', printf('prefill-%08d', i), printf('prefill-%08d', i), lower(hex(randomblob(32))),
             @now, @later, @now, 'active', @der FROM n`);
    const chunk = db.transaction((from: number, to: number) => {
      devices.run({ from, to, now });
      certificates.run({ from, to, now, later: now + 90 * 86_400_000, der });
    });
    for (let from = 1; from <= count; from += CHUNK) {
      const to = Math.min(count, from + CHUNK - 1);
      chunk(from, to);
      onProgress(to);
    }
  } finally {
    db.close();
  }
}

/**
 * Revokes `count` pre-filled certificates in one step and moves the revocation sequence;
 * returns when that commit is visible to the server. This connection leaves the checkpoint
 * to the server's checkpointer: SQLite would otherwise copy the ~1 GB of WAL pages into the
 * database inside this call, after the commit, and a clock started on return would miss
 * the ~2 s the server spent on the revocation meanwhile.
 */
export function revokePrefilled(dataDir: string, count: number): void {
  const db = new Database(join(dataDir, 'imprint.db'));
  try {
    db.pragma('wal_autocheckpoint = 0');
    db.transaction(() => {
      const { seq } = db.prepare('UPDATE revocation_state SET seq = seq + 1 WHERE id = 1 RETURNING seq').get() as { seq: number };
      db.prepare(`UPDATE certificates SET status = 'revoked', revoked_at = @now, revocation_reason = 'keyCompromise', revocation_seq = @seq
                  WHERE rowid IN (SELECT rowid FROM certificates WHERE subject LIKE 'prefill-%' AND status = 'active' LIMIT @count)`).run({
        now: Date.now(),
        seq,
        count,
      });
    }).immediate();
  } finally {
    db.close();
  }
}
