/**
 * Rows as the pool returns them (BIGINT as numbers, BYTEA as Buffers, BOOLEAN as
 * booleans), mapped to the domain's records, and the columns each record reads.
 */
import type { AuditEvent, CertificateRecord, CertificateStatus, DeviceRecord, OperatorRecord, OperatorRole, PublishedCrl, TokenRecord } from '../../enrollment/model.js';
import type { Row } from './query.js';

/** A time column (epoch milliseconds) as a Date; null stays null. */
export const date = (value: unknown): Date | null => (value === null || value === undefined ? null : new Date(value as number));

/** A nullable text column. */
export const text = (value: unknown): string | null => (value === null || value === undefined ? null : (value as string));

/** `columns` (a list as below) read from the table named `alias` in a join. */
export const qualified = (alias: string, columns: string): string => columns.replace(/(\w+)/g, `${alias}.$1`);

/** The columns of a TokenRecord. */
export const TOKEN_COLUMNS = 'id, label, device_id, created_at, created_by, expires_at, used_at, used_by_device, csr_sha256, serial, revoked_at, may_reprovision';

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
    mayReprovision: row.may_reprovision === true,
  };
}

/** The columns of a DeviceRecord. */
export const DEVICE_COLUMNS =
  'id, status, enrolled_at, updated_at, current_serial, revoked_at, revocation_reason, retiring_serial, retire_at, enrolled_via, enrollment_label';

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
    enrolledVia: row.enrolled_via as DeviceRecord['enrolledVia'],
    enrollmentLabel: text(row.enrollment_label),
  };
}

/** A certificate's status columns. */
export function statusFromRow(row: Row): CertificateStatus {
  return { status: row.status as CertificateStatus['status'], revokedAt: date(row.revoked_at), revocationReason: text(row.revocation_reason) };
}

/** The columns of a CertificateRecord. */
export const CERTIFICATE_COLUMNS =
  'serial, kind, subject, device_id, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, token_id, der';

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

/** The columns of an OperatorRecord. */
export const OPERATOR_COLUMNS = 'name, role, status, created_at, created_by, revoked_at';

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

/** The columns of an AuditEvent. */
export const AUDIT_COLUMNS = 'id, at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash';

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

/** The columns of a PublishedCrl. */
export const PUBLISHED_CRL_COLUMNS = 'scope, revocation_seq, crl_number, built_at, der';

/** A row of published_crls. */
export function publishedCrlFromRow(row: Row): PublishedCrl {
  return {
    scope: row.scope as PublishedCrl['scope'],
    revocationSeq: row.revocation_seq as number,
    crlNumber: row.crl_number as number,
    builtAt: date(row.built_at)!,
    der: row.der as Buffer,
  };
}
