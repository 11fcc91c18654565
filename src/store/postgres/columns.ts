/** The columns each record reads, named once for every query (rows map to records in ../rows.ts, shared with SQLite). */

/** `columns` (a list as below) read from the table named `alias` in a join. */
export const qualified = (alias: string, columns: string): string => columns.replace(/(\w+)/g, `${alias}.$1`);

/** The columns of a TokenRecord. */
export const TOKEN_COLUMNS = 'id, label, device_id, created_at, created_by, expires_at, used_at, used_by_device, csr_sha256, serial, revoked_at, may_reprovision';

/** The columns of a DeviceRecord. */
export const DEVICE_COLUMNS =
  'id, status, enrolled_at, updated_at, current_serial, revoked_at, revocation_reason, retiring_serial, retire_at, enrolled_via, enrollment_label';

/** The columns of a CertificateRecord. */
export const CERTIFICATE_COLUMNS =
  'serial, kind, subject, device_id, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, token_id, der';

/** The columns of an OperatorRecord. */
export const OPERATOR_COLUMNS = 'name, role, status, created_at, created_by, revoked_at';

/** The columns of an AuditEvent. */
export const AUDIT_COLUMNS = 'id, at, actor, action, outcome, source, token_id, device_id, serial, detail, prev_hash, hash';

/** The columns of a PublishedCrl. */
export const PUBLISHED_CRL_COLUMNS = 'scope, revocation_seq, crl_number, built_at, this_update, next_update, signature';
