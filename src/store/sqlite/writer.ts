/**
 * The writes several roles make inside their own transactions: certificates, audit
 * events (one hash chain) and revocations under the revocation sequence every process
 * watches.
 */
import type Database from 'better-sqlite3';
import type { AuditEventInput, NewCertificate, RevocationReason, RevocationResult } from '../../enrollment/model.js';
import { auditFields, auditHash, GENESIS_HASH } from '../audit-hash.js';
import type { BatchScope } from '../group-commit.js';
import { RevocationSignal } from '../revocation-signal.js';

/** Shared writes on one connection; the caller holds the transaction. */
export class Writer {
  private readonly statements;
  /** Told of every revocation this connection records (other processes are polled). */
  readonly revocations = new RevocationSignal();
  /**
   * The audit chain's head as the group-committed batch now running left it, carried from
   * one event to the next (a read fewer per event): no other connection appends while the
   * batch holds the write lock. Read afresh from the table outside a batch, and for each
   * batch's first event (others may have appended since the last one).
   */
  private chainHead: string | undefined;
  private inBatch = false;
  /** The group commit's view of this connection's chain head. */
  readonly batchScope: BatchScope = {
    opened: () => {
      this.inBatch = true;
      this.chainHead = undefined;
    },
    closed: () => {
      this.inBatch = false;
      this.chainHead = undefined;
    },
  };

  constructor(db: Database.Database) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      // The writes of every enrollment bind by position: by name, better-sqlite3 looks each
      // parameter up on the object through V8's API (~1,000 instructions a parameter, ~10 %
      // of the store's work per enrollment). The values follow the column list.
      insertCertificate: s(`INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                              issued_at, status, token_id, der, renewed_from, csr_sha256)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)`),
      lastAuditHash: s('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1'),
      insertAudit: s(`INSERT INTO audit_events (at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      bumpRevocationSeq: s('UPDATE revocation_state SET seq = seq + 1 WHERE id = 1 RETURNING seq'),
      revocationSeq: s('SELECT seq FROM revocation_state WHERE id = 1'),
      revokeCertificate: s(`UPDATE certificates SET status = 'revoked', revoked_at = @now, revocation_reason = @reason,
                              revocation_seq = @seq WHERE serial = @serial AND status = 'active'`),
      markDeviceKeys: s(`INSERT OR IGNORE INTO compromised_keys (spki_sha256, marked_at, serial)
                           SELECT spki_sha256, @now, serial FROM certificates WHERE device_id = @deviceId`),
      markCertificateKey: s(`INSERT OR IGNORE INTO compromised_keys (spki_sha256, marked_at, serial)
                               SELECT spki_sha256, @now, serial FROM certificates WHERE serial = @serial`),
    };
  }

  /** Records a certificate as issued, active. */
  insertCertificate(c: NewCertificate): void {
    const [notBefore, notAfter, issuedAt] = [c.notBefore.getTime(), c.notAfter.getTime(), c.issuedAt.getTime()];
    this.statements.insertCertificate.run(c.serial, c.kind, c.subject, c.deviceId, c.spkiSha256, notBefore, notAfter, issuedAt, c.tokenId, c.der, c.renewedFrom ?? null, c.csrSha256 ?? null);
  }

  /** Appends `event` to the audit hash chain. */
  insertAudit(event: AuditEventInput): void {
    const prevHash = this.chainHead ?? (this.statements.lastAuditHash.get() as { hash: string } | undefined)?.hash ?? GENESIS_HASH;
    const hash = auditHash(prevHash, event);
    const f = auditFields(event);
    const detail = event.detail ? JSON.stringify(event.detail) : null;
    this.statements.insertAudit.run(event.at.getTime(), f.actor, f.action, f.outcome, f.source, f.tokenId, f.deviceId, f.serial, detail, prevHash, hash);
    if (this.inBatch) this.chainHead = hash;
  }

  /** The current revocation sequence number. */
  currentSeq(): number {
    return (this.statements.revocationSeq.get() as { seq: number }).seq;
  }

  /**
   * Revokes the certificates a selection statement finds, under one new sequence number;
   * the sequence moves only when something was revoked.
   */
  revokeAll(select: Database.Statement, params: { readonly now: number } & Record<string, unknown>, reason: RevocationReason): RevocationResult {
    const serials = (select.all(params) as { serial: string }[]).map((row) => row.serial);
    return this.revokeSerials(serials, params.now, reason);
  }

  /** Revokes those of `serials` still active, under one new sequence number when any. */
  revokeSerials(serials: readonly string[], now: number, reason: RevocationReason): RevocationResult {
    const revoked: string[] = [];
    let seq: number | undefined;
    for (const serial of serials) {
      if (seq === undefined) {
        seq = this.bumpSeq();
        this.revocations.notify();
      }
      if (this.statements.revokeCertificate.run({ serial, now, reason, seq }).changes === 1) revoked.push(serial);
    }
    // An unused number is harmless: watchers only compare it.
    return { revoked, seq: seq ?? this.currentSeq() };
  }

  /**
   * Marks as never to be certified again the key of every certificate a device ever had, or
   * of one certificate (a keyCompromise revocation); returns how many keys were new to it.
   */
  markCompromised(of: { readonly deviceId: string } | { readonly serial: string }, now: number): number {
    const marked = 'deviceId' in of ? this.statements.markDeviceKeys.run({ ...of, now }) : this.statements.markCertificateKey.run({ ...of, now });
    return marked.changes;
  }

  /** Takes the next revocation sequence number. */
  private bumpSeq(): number {
    return (this.statements.bumpRevocationSeq.get() as { seq: number }).seq;
  }
}
