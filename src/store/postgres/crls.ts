/** PostgreSQL CRLs as built and shared by every instance on the database (what reproduces them, not their DER). */
import type { CrlScope, PublishedCrl } from '../../enrollment/model.js';
import type { CrlStore } from '../store.js';
import type { Postgres } from './connection.js';
import { PUBLISHED_CRL_COLUMNS } from './columns.js';
import { publishedCrlFromRow } from '../rows.js';

/** A single-row counter: the row lock makes concurrent takers wait for each other's commit. */
const NEXT_CRL_NUMBER = `UPDATE revocation_state SET crl_number = GREATEST(crl_number, (SELECT COALESCE(MAX(crl_number), 0) FROM published_crls)) + 1
  WHERE id = 1 RETURNING crl_number`;
/** One round trip per CRL request. */
const CRL_STATE = 'SELECT seq, (SELECT crl_number FROM published_crls WHERE scope = $1) AS crl_number FROM revocation_state WHERE id = 1';
const PUBLISHED = `SELECT ${PUBLISHED_CRL_COLUMNS} FROM published_crls WHERE scope = $1`;
/** Never goes back: a CRL with a lower number than the one there is not published (RETURNING then returns nothing). */
const PUBLISH = `INSERT INTO published_crls (scope, revocation_seq, crl_number, built_at, this_update, next_update, signature)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (scope) DO UPDATE SET revocation_seq = excluded.revocation_seq, crl_number = excluded.crl_number,
                   built_at = excluded.built_at, this_update = excluded.this_update, next_update = excluded.next_update,
                   signature = excluded.signature
                 WHERE excluded.crl_number > published_crls.crl_number
                 RETURNING ${PUBLISHED_CRL_COLUMNS}`;

/** Taken when free or past its time; RETURNING tells whether this caller got it. */
const CLAIM = `INSERT INTO crl_build_claims (scope, claimed_until) VALUES ($1, $3)
               ON CONFLICT (scope) DO UPDATE SET claimed_until = excluded.claimed_until
               WHERE crl_build_claims.claimed_until <= $2
               RETURNING scope`;
const RELEASE = 'DELETE FROM crl_build_claims WHERE scope = $1';

/** CRL numbers and the CRLs last published. */
export class PostgresCrls implements CrlStore {
  constructor(private readonly db: Postgres) {}

  async nextCrlNumber(): Promise<number> {
    const [row] = await this.db.rows<{ crl_number: number }>(NEXT_CRL_NUMBER);
    return row!.crl_number;
  }

  async crlState(scope: CrlScope): Promise<{ revocationSeq: number; publishedNumber: number | undefined }> {
    const [row] = await this.db.rows<{ seq: number; crl_number: number | null }>(CRL_STATE, [scope]);
    return { revocationSeq: row!.seq, publishedNumber: row!.crl_number ?? undefined };
  }

  async publishedCrl(scope: CrlScope): Promise<PublishedCrl | undefined> {
    const [row] = await this.db.rows(PUBLISHED, [scope]);
    return row && publishedCrlFromRow(row);
  }

  async publishCrl(crl: PublishedCrl): Promise<PublishedCrl> {
    const { scope, revocationSeq, crlNumber, builtAt, thisUpdate, nextUpdate, signature } = crl;
    const times = [builtAt, thisUpdate, nextUpdate].map((time) => time.getTime());
    const [published] = await this.db.rows(PUBLISH, [scope, revocationSeq, crlNumber, ...times, signature]);
    await this.releaseCrlBuild(crl.scope);
    // Not published: a newer one is there (read now, after the upsert waited for any writer of it).
    return published ? publishedCrlFromRow(published) : (await this.publishedCrl(crl.scope))!;
  }

  async claimCrlBuild(scope: CrlScope, now: Date, until: Date): Promise<boolean> {
    return (await this.db.rows(CLAIM, [scope, now.getTime(), until.getTime()])).length === 1;
  }

  async releaseCrlBuild(scope: CrlScope): Promise<void> {
    await this.db.rows(RELEASE, [scope]);
  }
}
