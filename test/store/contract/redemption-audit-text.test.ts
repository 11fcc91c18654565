/**
 * Store contract, the audit events of enrollments committed together: PostgreSQL hashes
 * them in SQL from the text the client serialised (migrations/postgres/0006), so every
 * field JSON escapes or leaves alone must come out with the hash `audit verify` computes,
 * also when two instances on one database append at once.
 */
import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditEventInput } from '../../../src/enrollment/model.js';
import { auditHash, GENESIS_HASH } from '../../../src/store/audit-hash.js';
import { PostgresStore } from '../../../src/store/postgres-store.js';
import type { Store } from '../../../src/store/store.js';
import { freshDatabaseUrl } from '../../helpers/postgres.js';
import { allPages, audit, enroll, mint, newId, redemption, useStores } from './harness.js';
import { STORES } from './stores.js';

/** Strings JSON.stringify escapes (quotes, backslash, control characters) or passes as UTF-8 (U+2028, non-BMP). */
const AWKWARD = ['"quoted" \\ back', 'tab\there\nline\r\u0001\u001f\u007f', '\u2028\u2029 separators', 'é ß 漢字 🛰️', ''];

async function everyEvent(store: Store): Promise<AuditEvent[]> {
  return (await allPages((cursor) => store.pageAudit({ cursor, limit: 50 }))).flat();
}

/** Every event's hash is the one computed from the event before it and its own fields. */
async function expectOneChain(store: Store): Promise<AuditEvent[]> {
  const events = await everyEvent(store);
  let prevHash = GENESIS_HASH;
  for (const event of events) {
    expect(event.prevHash, `event ${event.id}`).toBe(prevHash);
    expect(event.hash, `event ${event.id}`).toBe(auditHash(prevHash, event));
    prevHash = event.hash;
  }
  return events;
}

/** An enrollment's event carrying awkward text in every free field. */
function awkwardEvent(base: AuditEventInput, i: number): AuditEventInput {
  const text = AWKWARD[i % AWKWARD.length]!;
  return {
    ...base,
    at: new Date(base.at.getTime() + i),
    actor: `anonymous ${text}`,
    ...(text ? { source: text } : {}),
    detail: { text, lone: 'a lone \ud800 surrogate', n: i, fraction: i / 3, big: 2 ** 53 - 1, negative: -0.000001, nested: { list: [text, null, true] } },
  };
}

describe.each(STORES)('$name store: audit text of enrollments in one batch', (backend) => {
  const stores = useStores(backend);

  // Alone, PostgreSQL's batch is a transaction of its own; with another write, it runs in a shared one.
  it.each([
    { name: 'alone', between: false },
    { name: 'with an event appended between', between: true },
  ])('chains events whose fields JSON escapes, around a conflict: $name', async ({ between }) => {
    const store = await stores.fresh();
    const earlier = await enroll(store);
    const redemptions = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const r = redemption(await mint(store), i === 4 ? earlier.certificate.deviceId : newId());
        return { ...r, audit: awkwardEvent(r.audit, i) };
      }),
    );
    const appended = audit('enroll', { outcome: 'token_used', actor: 'anonymous \u2028', detail: { text: '"\\\u0000' } });

    const results = await Promise.all([
      ...redemptions.slice(0, 4).map((r) => store.redeemTokenAndRecordCertificate(r)),
      ...(between ? [store.appendAudit(appended)] : []),
      ...redemptions.slice(4).map((r) => store.redeemTokenAndRecordCertificate(r)),
    ]);
    expect(results.filter((result) => result !== undefined)).toEqual(
      redemptions.map((_, i) => (i === 4 ? { ok: false, conflict: 'device_exists' } : { ok: true })),
    );

    const events = await expectOneChain(store);
    const enrolled = events.filter((event) => event.action === 'enroll' && event.outcome === 'ok').slice(1);
    const expected = redemptions.filter((_, i) => i !== 4).map((r) => r.audit);
    expect(enrolled.map(({ id, prevHash, hash, ...event }) => event).sort((a, b) => a.at.getTime() - b.at.getTime())).toEqual(
      expected.map((event) => ({ ...event, source: event.source ?? null, tokenId: event.tokenId ?? null, deviceId: event.deviceId ?? null, serial: event.serial ?? null })),
    );
    expect(events.filter((event) => event.outcome === 'token_used').map((event) => event.detail)).toEqual(between ? [appended.detail] : []);
  });
});

describe('two PostgreSQL stores on one database', () => {
  it('keep one audit chain while both enroll in batches and append other events at once', async () => {
    const url = await freshDatabaseUrl();
    const [first, second] = await Promise.all([PostgresStore.open(url), PostgresStore.open(url)]);
    try {
      const round = async (store: Store, n: number) => {
        const redemptions = await Promise.all(Array.from({ length: 12 }, async () => redemption(await mint(store), newId())));
        return Promise.all([
          ...redemptions.map((r, i) => store.redeemTokenAndRecordCertificate({ ...r, audit: awkwardEvent(r.audit, n + i) })),
          store.appendAudit(audit('enroll', { outcome: 'token_used', detail: { n } })),
        ]);
      };
      const results = (await Promise.all([1, 2, 3].flatMap((n) => [round(first!, n * 100), round(second!, n * 100 + 50)]))).flat();
      expect(results.filter((result) => result !== undefined)).toEqual(Array.from({ length: 72 }, () => ({ ok: true })));
      const events = await expectOneChain(first!);
      expect(events.filter((event) => event.action === 'enroll').map((event) => event.outcome).sort()).toEqual([
        ...Array.from({ length: 72 }, () => 'ok'),
        ...Array.from({ length: 6 }, () => 'token_used'),
      ]);
    } finally {
      await Promise.all([first?.close(), second?.close()]);
    }
  });
});
