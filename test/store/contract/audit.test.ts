/**
 * Store contract, audit: one hash chain over every event, whichever operation appended it
 * and however many did so at once, verifiable from the events as read back; listings in id
 * order from a time, and newest first by actor, device and action, a page at a time.
 */
import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditEventInput } from '../../../src/enrollment/model.js';
import { auditHash, GENESIS_HASH } from '../../../src/store/audit-hash.js';
import type { Store } from '../../../src/store/store.js';
import { allPages, at, audit, enroll, mint, newId, useStores } from './harness.js';
import { STORES } from './stores.js';

/** Every event, in id order, through the paged listing. */
async function everyEvent(store: Store): Promise<AuditEvent[]> {
  return (await allPages((cursor) => store.pageAudit({ cursor, limit: 7 }))).flat();
}

/** Asserts that each event chains to the one before, from the genesis hash. */
function expectChained(events: readonly AuditEvent[]): void {
  let prevHash = GENESIS_HASH;
  for (const event of events) {
    expect(event.prevHash, `event ${event.id}`).toBe(prevHash);
    expect(event.hash, `event ${event.id}`).toBe(auditHash(prevHash, event));
    prevHash = event.hash;
  }
}

describe.each(STORES)('$name store: audit', (backend) => {
  const stores = useStores(backend);

  it('chains every event, also when many operations append at once', async () => {
    const store = await stores.fresh();
    const devices = await Promise.all(Array.from({ length: 5 }, () => enroll(store)));
    await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => store.appendAudit(audit('enroll', { outcome: 'token_used', detail: { attempt: i } }))),
      ...Array.from({ length: 10 }, () => enroll(store)),
      ...devices.map((d) => store.revokeDevice(d.certificate.deviceId, 'unspecified', audit('devices.revoke'))),
      mint(store),
    ]);
    const events = await everyEvent(store);
    // 5 + 10 enrollments and their tokens' batches, 40 refusals, 5 revocations, 1 batch.
    expect(events).toHaveLength(15 * 2 + 40 + 5 + 1);
    expect(events.map((event) => event.id)).toEqual([...events.map((event) => event.id)].sort((a, b) => a - b));
    expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
    expectChained(events);
  });

  it('reads an event back as appended, every field included', async () => {
    const store = await stores.fresh();
    const full: AuditEventInput = {
      at: at(3),
      actor: 'operator:alice',
      action: 'devices.revoke',
      outcome: 'ok',
      source: '127.0.0.1',
      tokenId: 'tok-1',
      deviceId: 'sensor-1',
      serial: '0a1b2c',
      // Key order, nesting, numbers and text as a client might send them.
      detail: { zeta: 1, alpha: [1, 'two', null, { nested: true }], reason: 'keyCompromise', note: 'Grüße \u{1F4E1} "quoted"', n: 1.5 },
    };
    const bare: AuditEventInput = { at: at(4), actor: 'anonymous', action: 'enroll', outcome: 'token_invalid' };
    await store.appendAudit(full);
    await store.appendAudit(bare);
    const [first, second] = await store.listAudit({ limit: 10 });
    expect(first).toEqual({ ...full, id: first!.id, prevHash: GENESIS_HASH, hash: auditHash(GENESIS_HASH, full) });
    expect(Object.keys(first!.detail!)).toEqual(Object.keys(full.detail!));
    expect(second).toEqual({ ...bare, id: second!.id, prevHash: first!.hash, hash: auditHash(first!.hash, bare) });
    expect(second!.id).toBeGreaterThan(first!.id);
  });

  it('lists in id order from a time and after an id, and pages with a cursor', async () => {
    const store = await stores.fresh();
    for (let minute = 0; minute < 10; minute++) await store.appendAudit(audit('tokens.create', { at: at(minute) }));
    const events = await store.listAudit({ limit: 100 });
    expect(events.map((event) => event.at)).toEqual(Array.from({ length: 10 }, (_, minute) => at(minute)));

    expect((await store.listAudit({ since: at(7), limit: 100 })).map((event) => event.at)).toEqual([at(7), at(8), at(9)]);
    expect(await store.listAudit({ afterId: events[5]!.id, limit: 2 })).toEqual(events.slice(6, 8));
    expect(await store.listAudit({ since: at(2), afterId: events[0]!.id, limit: 1 })).toEqual([events[2]]);

    const pages = await allPages((cursor) => store.pageAudit({ since: at(3), cursor, limit: 3 }));
    expect(pages.map((page) => page.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(events.slice(3));
    expect(await store.pageAudit({ since: at(10), limit: 3 })).toEqual({ items: [], nextCursor: null });
  });

  it('browses newest first by actor, device and action, a page at a time', async () => {
    const store = await stores.fresh();
    const device = newId();
    const plan = [
      { actor: 'operator:alice', action: 'tokens.create' },
      { actor: 'anonymous', action: 'enroll', deviceId: device },
      { actor: `device:${device}`, action: 'renew', deviceId: device },
      { actor: 'operator:alice', action: 'devices.revoke', deviceId: device },
      { actor: 'operator:bob', action: 'devices.revoke', deviceId: newId() },
      { actor: 'operator:alice', action: 'tokens.create' },
    ];
    for (const [minute, fields] of plan.entries()) await store.appendAudit(audit(fields.action, { at: at(minute), ...fields }));
    const browse = async (filter: { actor?: string; deviceId?: string; action?: string }) =>
      (await allPages((cursor) => store.browseAudit({ ...filter, cursor, limit: 2 }))).flat().map((event) => plan.findIndex((_, i) => event.at.getTime() === at(i).getTime()));

    expect(await browse({})).toEqual([5, 4, 3, 2, 1, 0]);
    expect(await browse({ actor: 'operator:alice' })).toEqual([5, 3, 0]);
    expect(await browse({ deviceId: device })).toEqual([3, 2, 1]);
    expect(await browse({ action: 'devices.revoke' })).toEqual([4, 3]);
    expect(await browse({ actor: 'operator:alice', deviceId: device, action: 'devices.revoke' })).toEqual([3]);
    expect(await browse({ actor: 'operator:carol' })).toEqual([]);
    // Exact matches only.
    expect(await browse({ actor: 'operator:%' })).toEqual([]);
    expect(await browse({ action: 'devices' })).toEqual([]);
  });
});
