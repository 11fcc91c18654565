/**
 * The writes several roles make inside their own transactions: certificates, and
 * revocations under the revocation sequence every instance watches. (Audit events are the
 * transaction's own: Transaction.appendAudit.)
 */
import type { NewCertificate, RevocationReason, RevocationResult } from '../../enrollment/model.js';
import type { Queryable } from './query.js';
import type { Transaction } from './transaction.js';
import { REVOCATION_CHANNEL } from './notifications.js';

const INSERT_CERTIFICATE = `INSERT INTO certificates (serial, kind, subject, device_id, spki_sha256, not_before, not_after,
                              issued_at, status, token_id, der, renewed_from, csr_sha256)
                            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12)`;

/**
 * A single-row counter: the row lock the UPDATE takes is held to commit, so sequence
 * numbers commit in the order they were taken, and a watcher that saw seq N has seen every
 * revocation up to N.
 */
const BUMP_SEQ = `WITH bumped AS (UPDATE revocation_state SET seq = seq + 1 WHERE id = 1 RETURNING seq)
                  SELECT seq, pg_notify('${REVOCATION_CHANNEL}', seq::text) FROM bumped`;
const CURRENT_SEQ = 'SELECT seq FROM revocation_state WHERE id = 1';
const REVOKE = `UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3, revocation_seq = $4
                WHERE serial = ANY($1::text[]) AND status = 'active' RETURNING serial`;

/** Records a certificate (always active when recorded). */
export async function insertCertificate(tx: Transaction, certificate: NewCertificate): Promise<void> {
  await tx.changes(INSERT_CERTIFICATE, [
    certificate.serial,
    certificate.kind,
    certificate.subject,
    certificate.deviceId,
    certificate.spkiSha256,
    certificate.notBefore.getTime(),
    certificate.notAfter.getTime(),
    certificate.issuedAt.getTime(),
    certificate.tokenId,
    certificate.der,
    certificate.renewedFrom ?? null,
    certificate.csrSha256 ?? null,
  ]);
}

/** The current revocation sequence number. */
export async function currentSeq(db: Queryable): Promise<number> {
  const [row] = await db.rows<{ seq: number }>(CURRENT_SEQ);
  return row!.seq;
}

/** Revokes the certificates a selection finds (a column `serial`), under one new sequence number. */
export async function revokeSelected(
  tx: Transaction,
  select: string,
  params: readonly unknown[],
  now: number,
  reason: RevocationReason,
): Promise<RevocationResult> {
  const serials = (await tx.rows<{ serial: string }>(select, params)).map((row) => row.serial);
  return revokeSerials(tx, serials, now, reason);
}

const MARK_DEVICE_KEYS = `INSERT INTO compromised_keys (spki_sha256, marked_at, serial)
                            SELECT spki_sha256, $2, serial FROM certificates WHERE device_id = $1 ORDER BY issued_at, pos
                          ON CONFLICT DO NOTHING`;
const MARK_CERTIFICATE_KEY = `INSERT INTO compromised_keys (spki_sha256, marked_at, serial)
                                SELECT spki_sha256, $2, serial FROM certificates WHERE serial = $1
                              ON CONFLICT DO NOTHING`;

/**
 * Marks as never to be certified again the key of every certificate a device ever had, or
 * of one certificate (a keyCompromise revocation); returns how many keys were new to it.
 */
export async function markCompromised(tx: Transaction, of: { readonly deviceId: string } | { readonly serial: string }, now: number): Promise<number> {
  return 'deviceId' in of ? tx.changes(MARK_DEVICE_KEYS, [of.deviceId, now]) : tx.changes(MARK_CERTIFICATE_KEY, [of.serial, now]);
}

/**
 * Revokes those of `serials` still active, under one new sequence number when any (the
 * sequence moves only when there was something to revoke); `revoked` keeps their order.
 */
export async function revokeSerials(tx: Transaction, serials: readonly string[], now: number, reason: RevocationReason): Promise<RevocationResult> {
  // An unused number is harmless: watchers only compare it.
  if (serials.length === 0) return { revoked: [], seq: await currentSeq(tx) };
  const [bumped] = await tx.rows<{ seq: number }>(BUMP_SEQ);
  tx.revoking = true;
  const seq = bumped!.seq;
  const changed = new Set((await tx.rows<{ serial: string }>(REVOKE, [serials, now, reason, seq])).map((row) => row.serial));
  return { revoked: serials.filter((serial) => changed.has(serial)), seq };
}
