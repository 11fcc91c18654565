/** SQLite operators: identities, their certificates, and revoking them with what they minted. */
import type Database from 'better-sqlite3';
import type { AuditEventInput, NewCertificate, OperatorRecord, OperatorRole, RevocationReason, RevocationResult } from '../../enrollment/model.js';
import type { OperatorStore } from '../store.js';
import { operatorFromRow, type Row } from '../rows.js';
import type { Writer } from './writer.js';

/** The operators table. */
export class SqliteOperators implements OperatorStore {
  private readonly statements;

  constructor(
    private readonly db: Database.Database,
    private readonly writer: Writer,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      operator: s('SELECT * FROM operators WHERE name = ?'),
      operators: s('SELECT * FROM operators ORDER BY name'),
      upsertOperator: s(`INSERT INTO operators (name, role, status, created_at, created_by) VALUES (@name, @role, 'active', @now, @createdBy)
                         ON CONFLICT (name) DO UPDATE SET role = excluded.role, status = 'active', created_at = excluded.created_at,
                           created_by = excluded.created_by, revoked_at = NULL
                         WHERE operators.status = 'revoked'`),
      revokeOperator: s(`UPDATE operators SET status = 'revoked', revoked_at = @now WHERE name = @id AND status = 'active'`),
      // An operator's certificates belong to no device: found among those (certificates_device), not among every active one.
      activeOperatorCertificates: s(`SELECT serial FROM certificates
                                     WHERE device_id IS NULL AND kind = 'operator' AND subject = @id AND status = 'active' AND not_after > @now`),
      // Expired tokens can enroll nothing: left as they are, which keeps the work to the live ones.
      revokeTokensByCreator: s(`UPDATE tokens SET revoked_at = @now
                                WHERE created_by = @createdBy AND used_at IS NULL AND revoked_at IS NULL AND expires_at > @now`),
    };
  }

  async recordOperator(
    operator: { name: string; role: OperatorRole; createdBy: string; certificate: NewCertificate },
    audit: AuditEventInput,
  ): Promise<{ ok: true } | { ok: false; conflict: 'operator_exists' }> {
    return this.db.transaction(() => {
      const now = audit.at.getTime();
      const upserted = this.statements.upsertOperator.run({ name: operator.name, role: operator.role, now, createdBy: operator.createdBy });
      if (upserted.changes !== 1) return { ok: false as const, conflict: 'operator_exists' as const };
      this.writer.insertCertificate(operator.certificate);
      this.writer.insertAudit(audit);
      return { ok: true as const };
    }).immediate();
  }

  async findOperator(name: string): Promise<OperatorRecord | undefined> {
    const row = this.statements.operator.get(name) as Row | undefined;
    return row && operatorFromRow(row);
  }

  async listOperators(): Promise<OperatorRecord[]> {
    return (this.statements.operators.all() as Row[]).map(operatorFromRow);
  }

  async revokeOperator(
    name: string,
    tokensCreatedBy: string,
    reason: RevocationReason,
    audit: AuditEventInput,
  ): Promise<(RevocationResult & { operator: OperatorRecord; revokedTokens: number }) | undefined> {
    return this.db.transaction(() => {
      if (!this.statements.operator.get(name)) return undefined;
      const now = audit.at.getTime();
      const result = this.writer.revokeAll(this.statements.activeOperatorCertificates, { id: name, now }, reason);
      const changed = this.statements.revokeOperator.run({ id: name, now }).changes === 1;
      const revokedTokens = this.statements.revokeTokensByCreator.run({ now, createdBy: tokensCreatedBy }).changes;
      if (changed || result.revoked.length || revokedTokens) {
        this.writer.insertAudit({ ...audit, detail: { ...audit.detail, serials: result.revoked, revokedTokens } });
      }
      return { ...result, operator: operatorFromRow(this.statements.operator.get(name) as Row), revokedTokens };
    }).immediate();
  }
}
