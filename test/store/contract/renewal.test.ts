/**
 * Store contract, renewal: a new certificate for an active device supersedes all but the
 * one it renewed with, which retires when the new one is first used or when its deadline
 * passes; the same renewal sent again finds what it produced; every refusal writes nothing.
 */
import { describe, expect, it } from 'vitest';
import type { Renewal } from '../../../src/enrollment/model.js';
import type { Store } from '../../../src/store/store.js';
import { at, atDay, audit, enroll, hex, renewal, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: renewal', (backend) => {
  const stores = useStores(backend);

  /** Records a renewal that must succeed. */
  async function renew(store: Store, r: Renewal): Promise<Renewal> {
    expect(await store.recordRenewal(r)).toEqual({ ok: true });
    return r;
  }

  it('makes the new certificate current and keeps the one it renewed with until its deadline', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store);
    const r = await renew(store, renewal(first.deviceId, first.serial, { retireAt: atDay(1) }));

    expect(await store.findDevice(first.deviceId)).toMatchObject({
      status: 'active',
      updatedAt: at(2),
      currentSerial: r.certificate.serial,
      retiringSerial: first.serial,
      retireAt: atDay(1),
    });
    expect(await store.certificateStatus(first.serial)).toMatchObject({ status: 'active' });
    const { renewedFrom: _from, csrSha256: _csr, ...recorded } = r.certificate;
    expect(await store.findCertificate(r.certificate.serial)).toEqual({ ...recorded, status: 'active', revokedAt: null, revocationReason: null });
    expect(await store.findRenewal(first.serial, r.certificate.csrSha256!)).toEqual({ ...recorded, status: 'active', revokedAt: null, revocationReason: null });
    expect(await store.findRenewal(first.serial, hex(32))).toBeUndefined();
    const [event] = (await store.browseAudit({ deviceId: first.deviceId, action: 'renew', limit: 10 })).items;
    expect(event).toMatchObject({ serial: r.certificate.serial, detail: { retiring: first.serial, retireAt: atDay(1).toISOString(), superseded: [] } });
  });

  it('supersedes every other certificate of the device at once, for the reason passed in', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store);
    const second = await renew(store, renewal(first.deviceId, first.serial));
    const seq = await store.revocationSeq();
    const third = await renew(store, renewal(first.deviceId, second.certificate.serial, { now: at(3), retireAt: atDay(2), supersede: 'affiliationChanged' }));

    expect(await store.certificateStatus(first.serial)).toEqual({ status: 'revoked', revokedAt: at(3), revocationReason: 'affiliationChanged' });
    expect(await store.revokedSince(seq)).toEqual([first.serial]);
    expect(await store.findDevice(first.deviceId)).toMatchObject({ currentSerial: third.certificate.serial, retiringSerial: second.certificate.serial, retireAt: atDay(2) });
    const active = await store.listCertificates({ deviceId: first.deviceId, status: 'active', limit: 10 });
    expect(active.items.map((c) => c.serial).sort()).toEqual([second.certificate.serial, third.certificate.serial].sort());
  });

  it('renewing again with the retiring certificate keeps its deadline and supersedes the newer one', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store);
    const lost = await renew(store, renewal(first.deviceId, first.serial, { retireAt: atDay(1) }));
    const again = await renew(store, renewal(first.deviceId, first.serial, { now: at(4), retireAt: atDay(5) }));

    expect(await store.findDevice(first.deviceId)).toMatchObject({ currentSerial: again.certificate.serial, retiringSerial: first.serial, retireAt: atDay(1) });
    expect(await store.certificateStatus(lost.certificate.serial)).toMatchObject({ status: 'revoked', revocationReason: 'superseded' });
  });

  it('counts renewals, not enrollments, since a time', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store);
    expect(await store.renewalCount(first.deviceId, atDay(-1))).toEqual({ count: 0, oldest: null });
    const second = await renew(store, renewal(first.deviceId, first.serial, { certificate: { issuedAt: at(2) } }));
    await renew(store, renewal(first.deviceId, second.certificate.serial, { now: at(3), certificate: { issuedAt: at(3) } }));
    expect(await store.renewalCount(first.deviceId, atDay(-1))).toEqual({ count: 2, oldest: at(2) });
    expect(await store.renewalCount(first.deviceId, at(2))).toEqual({ count: 1, oldest: at(3) });
  });

  describe('refusals write nothing', () => {
    /** Expects `r` refused with `conflict`, and the device and its certificates as they were. */
    async function expectRefused(store: Store, r: Renewal, conflict: object): Promise<void> {
      const before = await store.findDevice(r.certificate.deviceId);
      const certificates = await store.listCertificates({ deviceId: r.certificate.deviceId, limit: 100 });
      expect(await store.recordRenewal(r)).toEqual({ ok: false, ...conflict });
      expect(await store.findDevice(r.certificate.deviceId)).toEqual(before);
      expect(await store.listCertificates({ deviceId: r.certificate.deviceId, limit: 100 })).toEqual(certificates);
      expect(await store.findCertificate(r.certificate.serial)).toBeUndefined();
    }

    it('device_not_active: no such device, or a revoked one', async () => {
      const store = stores.shared();
      const { certificate } = await enroll(store);
      await expectRefused(store, renewal('no-such-device', certificate.serial), { conflict: 'device_not_active' });
      await store.revokeDevice(certificate.deviceId, 'unspecified', audit('devices.revoke'));
      await expectRefused(store, renewal(certificate.deviceId, certificate.serial), { conflict: 'device_not_active' });
    });

    it('certificate_not_current: a revoked one, a superseded one, another device’s', async () => {
      const store = stores.shared();
      const { certificate: first } = await enroll(store);
      const second = await renew(store, renewal(first.deviceId, first.serial));
      const third = await renew(store, renewal(first.deviceId, second.certificate.serial));
      // `first` was superseded by the second renewal.
      await expectRefused(store, renewal(first.deviceId, first.serial), { conflict: 'certificate_not_current' });
      const { certificate: other } = await enroll(store);
      await expectRefused(store, renewal(first.deviceId, other.serial), { conflict: 'certificate_not_current' });
      await store.revokeCertificate(third.certificate.serial, 'unspecified', audit('certificates.revoke'));
      await expectRefused(store, renewal(first.deviceId, third.certificate.serial), { conflict: 'certificate_not_current' });
    });

    it('already_renewed: the same certificate and CSR again, answered with the serial it produced', async () => {
      const store = stores.shared();
      const { certificate: first } = await enroll(store);
      const r = await renew(store, renewal(first.deviceId, first.serial));
      const again = renewal(first.deviceId, first.serial, { now: at(5), certificate: { csrSha256: r.certificate.csrSha256 } });
      await expectRefused(store, again, { conflict: 'already_renewed', serial: r.certificate.serial });
    });

    it('key_reused: a key certified for another device', async () => {
      const store = stores.shared();
      const { certificate: first } = await enroll(store);
      const { certificate: other } = await enroll(store);
      await expectRefused(store, renewal(first.deviceId, first.serial, { certificate: { spkiSha256: other.spkiSha256 } }), { conflict: 'key_reused' });
    });

    it('renewal_limit: too many in the window, with when the oldest leaves it', async () => {
      const store = stores.shared();
      const { certificate: first } = await enroll(store);
      const limit = { max: 2, since: at(-60) };
      const second = await renew(store, renewal(first.deviceId, first.serial, { limit, certificate: { issuedAt: at(2) } }));
      await renew(store, renewal(first.deviceId, second.certificate.serial, { limit, now: at(3), certificate: { issuedAt: at(3) } }));
      const current = (await store.findDevice(first.deviceId))!.currentSerial!;
      // The window is an hour long (now - since): the renewal at +2 min leaves it at +62 min.
      await expectRefused(store, renewal(first.deviceId, current, { limit: { max: 2, since: at(-56) }, now: at(4) }), { conflict: 'renewal_limit', retryAt: at(62) });
    });
  });

  it('serialises concurrent renewals: the limit holds and the device keeps two certificates', async () => {
    const store = stores.shared();
    const { certificate: first } = await enroll(store);
    const attempts = Array.from({ length: 10 }, () => renewal(first.deviceId, first.serial, { limit: { max: 3, since: atDay(-1) } }));
    const results = await Promise.all(attempts.map((r) => store.recordRenewal(r)));
    expect(results.filter((result) => result.ok)).toHaveLength(3);
    expect(results.filter((result) => !result.ok).map((result) => 'conflict' in result && result.conflict)).toEqual(Array(7).fill('renewal_limit'));
    const device = await store.findDevice(first.deviceId);
    expect(device?.retiringSerial).toBe(first.serial);
    const active = await store.listCertificates({ deviceId: first.deviceId, status: 'active', limit: 100 });
    expect(active.items.map((c) => c.serial).sort()).toEqual([first.serial, device?.currentSerial].sort());
  });

  describe('retiring the replaced certificate', () => {
    it('retireReplaced: on first use of the new certificate, for the reason passed in, once', async () => {
      const store = stores.shared();
      const { certificate: first } = await enroll(store);
      const r = await renew(store, renewal(first.deviceId, first.serial));
      const seq = await store.revocationSeq();

      // Used with the old certificate: nothing happens.
      expect(await store.retireReplaced(first.deviceId, first.serial, 'superseded', audit('renew.retire'))).toEqual({ revoked: [], seq });
      const result = await store.retireReplaced(first.deviceId, r.certificate.serial, 'cessationOfOperation', audit('renew.retire', { at: at(7), actor: 'system' }));
      expect(result.revoked).toEqual([first.serial]);
      expect(result.seq).toBeGreaterThan(seq);
      expect(await store.revocationSeq()).toBe(result.seq);
      expect(await store.certificateStatus(first.serial)).toEqual({ status: 'revoked', revokedAt: at(7), revocationReason: 'cessationOfOperation' });
      expect(await store.findDevice(first.deviceId)).toMatchObject({ currentSerial: r.certificate.serial, retiringSerial: null, retireAt: null });
      const [event] = (await store.browseAudit({ deviceId: first.deviceId, action: 'renew.retire', limit: 10 })).items;
      expect(event).toMatchObject({ serial: first.serial, actor: 'system', detail: { reason: 'cessationOfOperation' } });

      expect(await store.retireReplaced(first.deviceId, r.certificate.serial, 'superseded', audit('renew.retire'))).toEqual({ revoked: [], seq: result.seq });
      expect(await store.retireReplaced('no-such-device', r.certificate.serial, 'superseded', audit('renew.retire'))).toEqual({ revoked: [], seq: result.seq });
    });

    it('retireOverdue: every replaced certificate whose deadline passed, for the reason passed in', async () => {
      const store = await stores.fresh();
      const { certificate: due } = await enroll(store);
      const { certificate: later } = await enroll(store);
      const { certificate: none } = await enroll(store);
      await renew(store, renewal(due.deviceId, due.serial, { retireAt: at(10) }));
      await renew(store, renewal(later.deviceId, later.serial, { retireAt: at(100) }));
      const seq = await store.revocationSeq();

      expect(await store.retireOverdue('superseded', audit('renew.retire', { at: at(9) }))).toEqual({ revoked: [], seq });
      const result = await store.retireOverdue('privilegeWithdrawn', audit('renew.retire', { at: at(50) }));
      expect(result.revoked).toEqual([due.serial]);
      expect(result.seq).toBeGreaterThan(seq);
      expect(await store.certificateStatus(due.serial)).toEqual({ status: 'revoked', revokedAt: at(50), revocationReason: 'privilegeWithdrawn' });
      expect(await store.certificateStatus(later.serial)).toMatchObject({ status: 'active' });
      expect(await store.certificateStatus(none.serial)).toMatchObject({ status: 'active' });
      expect(await store.findDevice(due.deviceId)).toMatchObject({ retiringSerial: null, retireAt: null });
      expect(await store.findDevice(later.deviceId)).toMatchObject({ retiringSerial: later.serial, retireAt: at(100) });
      expect((await store.browseAudit({ action: 'renew.retire', limit: 10 })).items.map((event) => [event.deviceId, event.serial])).toEqual([[due.deviceId, due.serial]]);
      expect(await store.retireOverdue('superseded', audit('renew.retire', { at: at(60) }))).toEqual({ revoked: [], seq: result.seq });
    });
  });
});
