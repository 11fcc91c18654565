/**
 * Store contract, enrollments that arrive together (one group-committed batch): each gets
 * its own outcome, and the audit chain holds every event of those that redeemed, beside
 * other events appended at the same time, whether a conflict or a failed write is among them.
 */
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/enrollment/model.js';
import { auditHash, GENESIS_HASH } from '../../../src/store/audit-hash.js';
import type { Store } from '../../../src/store/store.js';
import { allPages, audit, enroll, mint, newId, redemption, useStores } from './harness.js';
import { STORES } from './stores.js';

async function everyEvent(store: Store): Promise<AuditEvent[]> {
  return (await allPages((cursor) => store.pageAudit({ cursor, limit: 50 }))).flat();
}

describe.each(STORES)('$name store: enrollments in one batch', (backend) => {
  const stores = useStores(backend);

  it.each([
    { name: 'a conflict', fault: 'conflict' },
    { name: 'a serial already taken', fault: 'serial' },
  ] as const)('chains the events of those that redeemed, with $name among them', async ({ fault }) => {
    const store = await stores.fresh();
    const earlier = await enroll(store);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => mint(store)));
    const redemptions = tokens.map((token) => redemption(token, newId()));
    // The third is refused or fails: its token is already used, or its serial taken.
    const faulty =
      fault === 'conflict'
        ? redemption(await mint(store), earlier.certificate.deviceId)
        : redemption(tokens[2]!, newId(), { certificate: { serial: earlier.certificate.serial } });
    redemptions[2] = faulty;
    const before = (await everyEvent(store)).length;

    const [refusedFirst, ...outcomes] = await Promise.allSettled([
      store.appendAudit(audit('enroll', { outcome: 'token_used', detail: { n: 1 } })),
      ...redemptions.slice(0, 3).map((r) => store.redeemTokenAndRecordCertificate(r)),
      store.appendAudit(audit('enroll', { outcome: 'token_used', detail: { n: 2 } })),
      ...redemptions.slice(3).map((r) => store.redeemTokenAndRecordCertificate(r)),
    ]);
    expect(refusedFirst.status).toBe('fulfilled');
    const results = outcomes.map((o) => (o.status === 'fulfilled' ? o.value : 'failed'));
    const faultOutcome = fault === 'conflict' ? { ok: false, conflict: 'device_exists' } : 'failed';
    expect(results).toEqual([{ ok: true }, { ok: true }, faultOutcome, undefined, { ok: true }, { ok: true }]);

    const events = (await everyEvent(store)).slice(before);
    const enrolled = [0, 1, 3, 4].map((i) => redemptions[i]!.certificate.serial);
    expect(events.filter((e) => e.action === 'enroll' && e.outcome === 'ok').map((e) => e.serial).sort()).toEqual(enrolled.sort());
    expect(events.filter((e) => e.outcome === 'token_used').map((e) => e.detail)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(events).toHaveLength(6);
    for (const r of [0, 1, 3, 4].map((i) => redemptions[i]!)) expect(await store.findDevice(r.certificate.deviceId)).toBeDefined();

    let prevHash = GENESIS_HASH;
    for (const event of await everyEvent(store)) {
      expect(event.prevHash, `event ${event.id}`).toBe(prevHash);
      expect(event.hash, `event ${event.id}`).toBe(auditHash(prevHash, event));
      prevHash = event.hash;
    }
  });
});
