/**
 * The audit chain on SQLite when several connections append to it (cluster workers, the
 * CLI): a group-committed batch carries the chain's head from one of its events to the next,
 * and reads it anew in each transaction, so that what another connection appended between
 * two batches is linked, not skipped.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditService } from '../../src/enrollment/audit-service.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { tempDir } from '../helpers/openssl.js';
import { audit, enroll, mint, newId, redemption } from './contract/harness.js';

describe('SQLite audit chain across connections', () => {
  it('links the events of batches on two connections appending in turn', async () => {
    const path = join(tempDir(), 'imprint.db');
    const server = SqliteStore.open(path);
    const cli = SqliteStore.open(path);
    try {
      await enroll(server);
      for (let turn = 0; turn < 3; turn++) {
        // One turn on each connection: a batch of refusals and enrollments, then the other's.
        const tokens = await Promise.all([mint(server), mint(server)]);
        await Promise.all([
          server.appendAudit(audit('enroll', { outcome: 'token_used', detail: { turn } })),
          ...tokens.map((token) => server.redeemTokenAndRecordCertificate(redemption(token, newId()))),
          server.appendAudit(audit('enroll', { outcome: 'token_invalid', detail: { turn } })),
        ]);
        await Promise.all([cli.appendAudit(audit('tokens.create', { detail: { turn } })), cli.appendAudit(audit('tokens.revoke', { detail: { turn } }))]);
      }
      const verified = await new AuditService(server).verify();
      expect(verified).toMatchObject({ ok: true });
      expect(verified.checked).toBe((await server.listAudit({ limit: 1000 })).length);
      expect(verified.checked).toBeGreaterThan(20);
    } finally {
      await cli.close();
      await server.close();
    }
  });
});
