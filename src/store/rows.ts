/**
 * Rows mapped to the domain's records, for both stores: the same column names, times as
 * epoch milliseconds, BLOB/BYTEA as Buffers. Booleans are 0/1 in SQLite and booleans in
 * PostgreSQL.
 */
import type { AuditEvent, CertificateRecord, CertificateStatus, DeviceRecord, OperatorRecord, OperatorRole, PublishedCrl, TokenBatchRecord, TokenRecord } from '../enrollment/model.js';

/** A row with its columns by name. */
export type Row = Record<string, unknown>;

/** A time column (epoch milliseconds) as a Date; null stays null. */
export const date = (value: unknown): Date | null => (value === null || value === undefined ? null : new Date(value as number));

/** A nullable text column. */
export const text = (value: unknown): string | null => (value === null || value === undefined ? null : (value as string));

/** A row of tokens. */
export function tokenFromRow(row: Row): TokenRecord {
  return {
    id: row.id as string,
    label: text(row.label),
    deviceId: text(row.device_id),
    createdAt: date(row.created_at)!,
    createdBy: row.created_by as string,
    expiresAt: date(row.expires_at)!,
    usedAt: date(row.used_at),
    usedByDevice: text(row.used_by_device),
    csrSha256: text(row.csr_sha256),
    serial: text(row.serial),
    revokedAt: date(row.revoked_at),
    mayReprovision: row.may_reprovision === 1 || row.may_reprovision === true,
  };
}

/** A row of devices. */
export function deviceFromRow(row: Row): DeviceRecord {
  return {
    id: row.id as string,
    status: row.status as DeviceRecord['status'],
    enrolledAt: date(row.enrolled_at)!,
    updatedAt: date(row.updated_at)!,
    currentSerial: text(row.current_serial),
    revokedAt: date(row.revoked_at),
    revocationReason: text(row.revocation_reason),
    retiringSerial: text(row.retiring_serial),
    retireAt: date(row.retire_at),
    enrolledVia: (text(row.enrolled_via) ?? 'json') as DeviceRecord['enrolledVia'],
    enrollmentLabel: text(row.enrollment_label),
  };
}

/** The status columns of a certificate row. */
export function statusFromRow(row: Row): CertificateStatus {
  return { status: row.status as CertificateStatus['status'], revokedAt: date(row.revoked_at), revocationReason: text(row.revocation_reason) };
}

/** A row of certificates. */
export function certificateFromRow(row: Row): CertificateRecord {
  return {
    serial: row.serial as string,
    kind: row.kind as CertificateRecord['kind'],
    subject: row.subject as string,
    deviceId: text(row.device_id),
    spkiSha256: row.spki_sha256 as string,
    notBefore: date(row.not_before)!,
    notAfter: date(row.not_after)!,
    issuedAt: date(row.issued_at)!,
    ...statusFromRow(row),
    tokenId: text(row.token_id),
    der: row.der as Buffer,
  };
}

/** A row of operators. */
export function operatorFromRow(row: Row): OperatorRecord {
  return {
    name: row.name as string,
    role: row.role as OperatorRole,
    status: row.status as OperatorRecord['status'],
    createdAt: date(row.created_at)!,
    createdBy: row.created_by as string,
    revokedAt: date(row.revoked_at),
  };
}

/** A row of audit_events. */
export function auditFromRow(row: Row): AuditEvent {
  return {
    id: row.id as number,
    at: date(row.at)!,
    actor: row.actor as string,
    action: row.action as string,
    outcome: row.outcome as string,
    source: text(row.source) ?? undefined,
    tokenId: text(row.token_id) ?? undefined,
    deviceId: text(row.device_id) ?? undefined,
    serial: text(row.serial) ?? undefined,
    detail: row.detail ? (JSON.parse(row.detail as string) as Record<string, unknown>) : undefined,
    prevHash: row.prev_hash as string,
    hash: row.hash as string,
  };
}

/** A row of published_crls. */
export function publishedCrlFromRow(row: Row): PublishedCrl {
  return {
    scope: row.scope as PublishedCrl['scope'],
    revocationSeq: row.revocation_seq as number,
    crlNumber: row.crl_number as number,
    builtAt: date(row.built_at)!,
    thisUpdate: date(row.this_update)!,
    nextUpdate: date(row.next_update)!,
    signature: row.signature as Buffer,
  };
}

/** A row of the token batch listing (tokens grouped by label). */
export function tokenBatchFromRow(row: Row): TokenBatchRecord {
  return {
    label: text(row.label),
    firstCreatedAt: date(row.first_created_at)!,
    lastCreatedAt: date(row.last_created_at)!,
    lastExpiresAt: date(row.last_expires_at)!,
    createdBy: row.created_by as string,
    total: row.total as number,
    unused: row.unused as number,
    used: row.used as number,
    expired: row.expired as number,
    revoked: row.revoked as number,
  };
}
