/** PostgreSQL operators: identities with roles, and their certificates. */
import type { AuditEventInput, NewCertificate, OperatorRecord, OperatorRole, RevocationReason, RevocationResult } from '../../enrollment/model.js';
import type { OperatorStore } from '../store.js';
import type { Postgres } from './connection.js';
import { OPERATOR_COLUMNS } from './columns.js';
import { operatorFromRow } from '../rows.js';
import { insertCertificate, revokeSelected } from './writer.js';

const OPERATOR = `SELECT ${OPERATOR_COLUMNS} FROM operators WHERE name = $1`;
/** A new name, or a revoked operator issued again; an active one is left alone (nothing changes). */
const UPSERT = `INSERT INTO operators (name, role, status, created_at, created_by) VALUES ($1, $2, 'active', $3, $4)
                ON CONFLICT (name) DO UPDATE SET role = excluded.role, status = 'active', created_at = excluded.created_at,
                  created_by = excluded.created_by, revoked_at = NULL
                WHERE operators.status = 'revoked'`;
const REVOKE = `UPDATE operators SET status = 'revoked', revoked_at = $2 WHERE name = $1 AND status = 'active'`;
/** ($1 name, $2 now) Read from certificates_operator. */
const ACTIVE_CERTIFICATES = `SELECT serial FROM certificates
                             WHERE kind = 'operator' AND subject = $1 AND status = 'active' AND not_after > $2 ORDER BY pos`;
// Expired tokens can enroll nothing: left as they are, and the index range stays to the live ones.
const REVOKE_TOKENS_BY_CREATOR = 'UPDATE tokens SET revoked_at = $1 WHERE created_by = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1';

/** Operator identities. */
export class PostgresOperators implements OperatorStore {
  constructor(private readonly db: Postgres) {}

  async recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }> {
    return this.db.write(async (tx) => {
      const upserted = await tx.changes(UPSERT, [operator.name, operator.role, audit.at.getTime(), operator.createdBy]);
      if (upserted !== 1) return { ok: false as const, conflict: 'operator_exists' as const };
      await insertCertificate(tx, operator.certificate);
      tx.appendAudit(audit);
      return { ok: true as const };
    });
  }

  async findOperator(name: string): Promise<OperatorRecord | undefined> {
    const [row] = await this.db.rows(OPERATOR, [name]);
    return row && operatorFromRow(row);
  }

  async listOperators(): Promise<OperatorRecord[]> {
    return (await this.db.rows(`SELECT ${OPERATOR_COLUMNS} FROM operators ORDER BY name`)).map(operatorFromRow);
  }

  async revokeOperator(
    name: string,
    tokensCreatedBy: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined> {
    return this.db.write(async (tx) => {
      if ((await tx.rows(OPERATOR, [name])).length === 0) return undefined;
      const now = audit.at.getTime();
      const result = await revokeSelected(tx, ACTIVE_CERTIFICATES, [name, now], now, reason);
      const changed = (await tx.changes(REVOKE, [name, now])) === 1;
      const revokedTokens = await tx.changes(REVOKE_TOKENS_BY_CREATOR, [now, tokensCreatedBy]);
      if (changed || result.revoked.length || revokedTokens) {
        tx.appendAudit({ ...audit, detail: { ...audit.detail, serials: result.revoked, revokedTokens } });
      }
      const [row] = await tx.rows(OPERATOR, [name]);
      return { ...result, operator: operatorFromRow(row!), revokedTokens };
    });
  }
}
