/**
 * Store contract, revocation: revoking a device or one certificate, the revocation sequence
 * every process follows (it moves only when something was revoked), and the revoked
 * certificates a CRL lists (the unexpired ones).
 */
import { describe, expect, it } from 'vitest';
import type { RevokedEntry } from '../../../src/enrollment/model.js';
import { at, atDay, audit, enroll, newId, newSerial, renewal, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: revocation', (backend) => {
  const stores = useStores(backend);

  it('revokes a device and all its certificates, expired ones too, once', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store, newId(), { certificate: { notAfter: at(-1) } });
    const r = renewal(first.deviceId, first.serial);
    expect(await store.recordRenewal(r)).toEqual({ ok: true });
    const seq = await store.revocationSeq();

    const result = await store.revokeDevice(first.deviceId, 'keyCompromise', audit('devices.revoke', { at: at(5) }));
    expect(result?.revoked.slice().sort()).toEqual([first.serial, r.certificate.serial].sort());
    expect(result?.seq).toBeGreaterThan(seq);
    expect(await store.revocationSeq()).toBe(result?.seq);
    expect(result?.device).toMatchObject({ id: first.deviceId, status: 'revoked', revokedAt: at(5), updatedAt: at(5), revocationReason: 'keyCompromise', retiringSerial: null, retireAt: null });
    expect(await store.findDevice(first.deviceId)).toEqual(result?.device);
    for (const serial of [first.serial, r.certificate.serial]) {
      expect(await store.certificateStatus(serial)).toEqual({ status: 'revoked', revokedAt: at(5), revocationReason: 'keyCompromise' });
    }
    const events = (await store.browseAudit({ deviceId: first.deviceId, action: 'devices.revoke', limit: 10 })).items;
    expect(events).toHaveLength(1);
    expect(events[0]?.detail).toMatchObject({ reason: 'keyCompromise' });

    // Nothing left to revoke: same sequence, no second event, the device as it was.
    const again = await store.revokeDevice(first.deviceId, 'unspecified', audit('devices.revoke', { at: at(6) }));
    expect(again).toEqual({ revoked: [], seq: result?.seq, device: result?.device });
    expect((await store.browseAudit({ deviceId: first.deviceId, action: 'devices.revoke', limit: 10 })).items).toHaveLength(1);
    expect(await store.revokeDevice(newId(), 'unspecified', audit('devices.revoke'))).toBeUndefined();
  });

  it('tells its subscribers of its own revocation before the caller hears it is done, and no more after they unsubscribe', async () => {
    const store = await stores.fresh();
    const { certificate } = await enroll(store, newId());
    let told = 0;
    const unsubscribe = store.onRevocation(() => told++);
    // PostgreSQL's first subscriber starts a LISTEN session, which tells its subscribers once
    // when it listens (a NOTIFY sent before then is not heard; that look finds what it told of).
    // A loaded machine may take more than a second to get there: wait for it.
    const listening = Date.now() + 15_000;
    do await new Promise((resolve) => setTimeout(resolve, 100));
    while (backend.name === 'postgres' && told === 0 && Date.now() < listening);
    const started = told;
    expect(started).toBe(backend.name === 'postgres' ? 1 : 0);
    await store.revokeCertificate(certificate.serial, 'unspecified', audit('certificates.revoke'));
    // Before the caller goes on: a process's caches never outlive an answer saying "revoked"
    // (on PostgreSQL the NOTIFY coming back may already have been heard too).
    expect(told).toBeGreaterThanOrEqual(started + 1);
    // PostgreSQL's NOTIFY comes back to this process too: at most one look more.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(told - started).toBeGreaterThanOrEqual(1);
    expect(told - started).toBeLessThanOrEqual(2);
    const before = told;
    unsubscribe();
    const { certificate: other } = await enroll(store, newId());
    await store.revokeCertificate(other.serial, 'unspecified', audit('certificates.revoke'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(told).toBe(before);
  });

  it('revokes one certificate once, leaving its device active', async () => {
    const store = stores.shared();
    const { certificate } = await enroll(store);
    const seq = await store.revocationSeq();
    const result = await store.revokeCertificate(certificate.serial, 'affiliationChanged', audit('certificates.revoke', { at: at(5) }));
    expect(result).toMatchObject({ revoked: [certificate.serial], certificate: { serial: certificate.serial, status: 'revoked', revokedAt: at(5), revocationReason: 'affiliationChanged' } });
    expect(result?.seq).toBeGreaterThan(seq);
    expect(await store.findDevice(certificate.deviceId)).toMatchObject({ status: 'active', currentSerial: certificate.serial });
    const [event] = (await store.browseAudit({ deviceId: certificate.deviceId, action: 'certificates.revoke', limit: 10 })).items;
    expect(event).toMatchObject({ serial: certificate.serial, deviceId: certificate.deviceId, detail: { reason: 'affiliationChanged' } });

    const again = await store.revokeCertificate(certificate.serial, 'keyCompromise', audit('certificates.revoke', { at: at(6) }));
    expect(again).toEqual({ revoked: [], seq: result?.seq, certificate: result?.certificate });
    expect(await store.revokeCertificate(newSerial(), 'unspecified', audit('certificates.revoke'))).toBeUndefined();
  });

  it('revokes a certificate revoked concurrently exactly once', async () => {
    const store = stores.shared();
    const { certificate } = await enroll(store);
    const results = await Promise.all(Array.from({ length: 8 }, () => store.revokeCertificate(certificate.serial, 'unspecified', audit('certificates.revoke'))));
    expect(results.filter((result) => result?.revoked.length)).toHaveLength(1);
  });

  it('moves the sequence only when something was revoked, and lists what was revoked since', async () => {
    const store = await stores.fresh();
    const start = await store.revocationSeq();
    const [a, b, c] = [await enroll(store), await enroll(store), await enroll(store)];
    expect(await store.revocationSeq()).toBe(start);
    expect(await store.revokedSince(start)).toEqual([]);

    const first = await store.revokeCertificate(a.certificate.serial, 'unspecified', audit('certificates.revoke'));
    const second = await store.revokeDevice(b.certificate.deviceId, 'unspecified', audit('devices.revoke'));
    expect(second!.seq).toBeGreaterThan(first!.seq);
    expect(await store.revokedSince(start)).toEqual([a.certificate.serial, b.certificate.serial]);
    expect(await store.revokedSince(first!.seq)).toEqual([b.certificate.serial]);
    expect(await store.revokedSince(second!.seq)).toEqual([]);

    // Revoking nothing new moves nothing.
    await store.revokeCertificate(a.certificate.serial, 'unspecified', audit('certificates.revoke'));
    await store.revokeDevice(b.certificate.deviceId, 'unspecified', audit('devices.revoke'));
    await store.retireOverdue('superseded', audit('renew.retire', { at: atDay(400) }));
    expect(await store.revocationSeq()).toBe(second!.seq);
    expect(await store.certificateStatus(c.certificate.serial)).toMatchObject({ status: 'active' });
  });

  it('lists for the CRL the revoked certificates of a sequence range not yet expired, in revocation order', async () => {
    const store = await stores.fresh();
    const soon = await enroll(store, newId(), { certificate: { notAfter: atDay(1) } });
    const later = await enroll(store, newId(), { certificate: { notAfter: atDay(90) } });
    const expired = await enroll(store, newId(), { certificate: { notAfter: at(-1) } });
    const kept = await enroll(store);
    await store.revokeCertificate(later.certificate.serial, 'keyCompromise', audit('certificates.revoke', { at: at(2) }));
    await store.revokeCertificate(soon.certificate.serial, 'cessationOfOperation', audit('certificates.revoke', { at: at(3) }));
    await store.revokeDevice(expired.certificate.deviceId, 'unspecified', audit('devices.revoke', { at: at(4) }));

    const all = await store.revocationSeq();
    const listRevoked = async (now: Date, afterSeq: number, upToSeq: number) => {
      const entries: RevokedEntry[] = [];
      for await (const page of store.listRevoked(now, afterSeq, upToSeq)) entries.push(...page);
      return entries;
    };
    expect(await listRevoked(at(5), 0, all)).toEqual([
      { serial: later.certificate.serial, revokedAt: at(2).getTime(), reason: 'keyCompromise', notAfter: atDay(90).getTime() },
      { serial: soon.certificate.serial, revokedAt: at(3).getTime(), reason: 'cessationOfOperation', notAfter: atDay(1).getTime() },
    ]);
    expect(await store.countRevoked(at(5))).toBe(2);
    // Two days on, the one that expired after a day has left the CRL.
    expect((await listRevoked(atDay(2), 0, all)).map((entry) => entry.serial)).toEqual([later.certificate.serial]);
    expect(await store.countRevoked(atDay(2))).toBe(1);
    expect(await store.countRevoked(atDay(100))).toBe(0);
    expect((await listRevoked(at(5), 0, all)).some((entry) => entry.serial === kept.certificate.serial)).toBe(false);
    // A range: the revocations after the first up to the second, not those after it.
    expect((await listRevoked(at(5), all - 2, all - 1)).map((entry) => entry.serial)).toEqual([soon.certificate.serial]);
    expect(await listRevoked(at(5), all, all)).toEqual([]);
  });
});
