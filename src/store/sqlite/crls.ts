/** SQLite CRLs: the CRL number in revocation_state, what reproduces the last CRL of each scope in published_crls. */
import type Database from 'better-sqlite3';
import type { CrlScope, PublishedCrl } from '../../enrollment/model.js';
import type { CrlStore } from '../store.js';
import { publishedCrlFromRow, type Row } from '../rows.js';

/** CRL numbers and published CRLs. */
export class SqliteCrls implements CrlStore {
  private readonly statements;

  constructor(private readonly db: Database.Database) {
    const s = (sql: string) => db.prepare(sql);
    this.statements = {
      nextCrlNumber: s(`UPDATE revocation_state SET crl_number = MAX(crl_number, (SELECT COALESCE(MAX(crl_number), 0) FROM published_crls)) + 1
                         WHERE id = 1 RETURNING crl_number`),
      crlState: s('SELECT seq, (SELECT crl_number FROM published_crls WHERE scope = ?) AS crl_number FROM revocation_state WHERE id = 1'),
      publishedCrl: s('SELECT * FROM published_crls WHERE scope = ?'),
      publishCrl: s(`INSERT INTO published_crls (scope, revocation_seq, crl_number, built_at, this_update, next_update, signature)
                     VALUES (@scope, @revocationSeq, @crlNumber, @builtAt, @thisUpdate, @nextUpdate, @signature)
                     ON CONFLICT (scope) DO UPDATE SET revocation_seq = excluded.revocation_seq, crl_number = excluded.crl_number,
                       built_at = excluded.built_at, this_update = excluded.this_update, next_update = excluded.next_update,
                       signature = excluded.signature
                     WHERE excluded.crl_number > published_crls.crl_number`),
      claimBuild: s(`INSERT INTO crl_build_claims (scope, claimed_until) VALUES (@scope, @until)
                     ON CONFLICT (scope) DO UPDATE SET claimed_until = excluded.claimed_until
                     WHERE crl_build_claims.claimed_until <= @now`),
      releaseBuild: s('DELETE FROM crl_build_claims WHERE scope = ?'),
    };
  }

  async nextCrlNumber(): Promise<number> {
    return this.db.transaction(() => (this.statements.nextCrlNumber.get() as { crl_number: number }).crl_number).immediate();
  }

  async crlState(scope: CrlScope): Promise<{ revocationSeq: number; publishedNumber: number | undefined }> {
    const row = this.statements.crlState.get(scope) as { seq: number; crl_number: number | null };
    return { revocationSeq: row.seq, publishedNumber: row.crl_number ?? undefined };
  }

  async publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined> {
    return readPublishedCrl(this.statements.publishedCrl, scope);
  }

  async publishCrl(crl: PublishedCrl): Promise<PublishedCrl> {
    return this.db
      .transaction(() => {
        this.statements.publishCrl.run({ ...crl, builtAt: crl.builtAt.getTime(), thisUpdate: crl.thisUpdate.getTime(), nextUpdate: crl.nextUpdate.getTime() });
        this.statements.releaseBuild.run(crl.scope);
        return readPublishedCrl(this.statements.publishedCrl, crl.scope)!;
      })
      .immediate();
  }

  async claimCrlBuild(scope: CrlScope, now: Date, until: Date): Promise<boolean> {
    return this.statements.claimBuild.run({ scope, now: now.getTime(), until: until.getTime() }).changes === 1;
  }

  async releaseCrlBuild(scope: CrlScope): Promise<void> {
    this.statements.releaseBuild.run(scope);
  }
}

function readPublishedCrl(publishedCrl: Database.Statement, scope: CrlScope): PublishedCrl | undefined {
  const row = publishedCrl.get(scope) as Row | undefined;
  return row && publishedCrlFromRow(row);
}
