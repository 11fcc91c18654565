/**
 * Store contract, inventory: finding and listing devices and certificates, the console's
 * fleet in both orders with its filters, the fleet's counts, and the status of any
 * certificate OCSP may be asked about (the server's own included).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../../src/store/store.js';
import { allPages, at, atDay, audit, enroll, newId, newSerial, operatorCertificate, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: inventory', (backend) => {
  const stores = useStores(backend);

  it('finds devices and tells which ids exist', async () => {
    const store = stores.shared();
    const active = (await enroll(store)).certificate.deviceId;
    const revoked = (await enroll(store)).certificate.deviceId;
    await store.revokeDevice(revoked, 'unspecified', audit('devices.revoke'));
    expect(await store.findDevice(newId())).toBeUndefined();
    expect((await store.existingDeviceIds([newId(), revoked, active])).sort()).toEqual([active, revoked].sort());
    expect(await store.existingDeviceIds([])).toEqual([]);
  });

  /**
   * A fleet enrolled a minute apart, each with its current certificate expiring on its own
   * day: `ids[i]` enrolled at +i min and expires at +expiries[i] days.
   */
  async function fleet(store: Store, ids: readonly string[], expiries: readonly number[]): Promise<void> {
    for (const [i, id] of ids.entries()) {
      await enroll(store, id, { now: at(i), certificate: { notAfter: atDay(expiries[i]!) } });
    }
  }

  describe('listing devices', () => {
    it('filters by status and by a substring of the id, a page at a time', async () => {
      const store = await stores.fresh();
      const ids = ['sensor-1', 'sensor-2', 'gateway-1', 'sensor-3', 'gateway-2'];
      await fleet(store, ids, [10, 20, 30, 40, 50]);
      await store.revokeDevice('sensor-2', 'unspecified', audit('devices.revoke'));

      const list = async (query: { status?: 'active' | 'revoked'; q?: string }) => (await store.listDevices({ ...query, limit: 100 })).items.map((d) => d.id).sort();
      expect(await list({})).toEqual([...ids].sort());
      expect(await list({ status: 'revoked' })).toEqual(['sensor-2']);
      expect(await list({ status: 'active', q: 'sensor' })).toEqual(['sensor-1', 'sensor-3']);
      expect(await list({ q: 'way-' })).toEqual(['gateway-1', 'gateway-2']);

      const everything = (await store.listDevices({ limit: 100 })).items;
      const pages = await allPages((cursor) => store.listDevices({ limit: 2, cursor }));
      expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
      expect(pages.flat()).toEqual(everything);
      const revokedPages = await allPages((cursor) => store.listDevices({ status: 'revoked', limit: 1, cursor }));
      expect(revokedPages.flat().map((d) => d.id)).toEqual(['sensor-2']);
    });

    it('takes % and _ in the search literally, in every listing', async () => {
      const store = await stores.fresh();
      await fleet(store, ['a_c-1', 'abc-1', 'a.c-1', 'A_C-2'], [10, 20, 30, 40]);
      const search = async (q: string) => ({
        listed: (await store.listDevices({ q, limit: 100 })).items.map((d) => d.id).sort(),
        ...Object.fromEntries(
          await Promise.all((['enrolled', 'expiry'] as const).map(async (sort) => [sort, (await store.browseDevices({ sort, q, limit: 100 })).items.map((d) => d.id).sort()])),
        ),
      });
      const everywhere = (ids: string[]) => ({ listed: ids, enrolled: ids, expiry: ids });
      expect(await search('_')).toEqual(everywhere(['A_C-2', 'a_c-1']));
      expect(await search('a_c')).toEqual(everywhere(['A_C-2', 'a_c-1']));
      expect(await search('%')).toEqual(everywhere([]));
      expect(await search('a%c')).toEqual(everywhere([]));
      expect(await search('\\')).toEqual(everywhere([]));
      expect(await search('.c-')).toEqual(everywhere(['a.c-1']));
    });

    it('matches the search ignoring ASCII case', async () => {
      const store = await stores.fresh();
      await fleet(store, ['Sensor-1', 'sensor-2', 'gateway-1'], [10, 20, 30]);
      expect((await store.listDevices({ q: 'SENSOR', limit: 100 })).items.map((d) => d.id).sort()).toEqual(['Sensor-1', 'sensor-2']);
      expect((await store.browseDevices({ sort: 'enrolled', q: 'sensor', limit: 100 })).items.map((d) => d.id)).toEqual(['sensor-2', 'Sensor-1']);
    });
  });

  describe('browsing the fleet', () => {
    const ids = ['d-1', 'd-2', 'd-3', 'd-4', 'd-5', 'd-6', 'd-7'];
    const expiries = [30, 10, 70, 50, 20, 60, 40];
    /** The fleet with d-2 revoked, and d-4 active but its current certificate revoked by serial. */
    const browsed = useStores(backend, async (store) => {
      await fleet(store, ids, expiries);
      await store.revokeDevice('d-2', 'unspecified', audit('devices.revoke'));
      await store.revokeCertificate((await store.findDevice('d-4'))!.currentSerial!, 'keyCompromise', audit('certificates.revoke'));
    });

    it.each([
      { sort: 'enrolled' as const, status: undefined, expected: ['d-7', 'd-6', 'd-5', 'd-4', 'd-3', 'd-2', 'd-1'] },
      { sort: 'enrolled' as const, status: 'active' as const, expected: ['d-7', 'd-6', 'd-5', 'd-4', 'd-3', 'd-1'] },
      { sort: 'enrolled' as const, status: 'revoked' as const, expected: ['d-2'] },
      { sort: 'expiry' as const, status: undefined, expected: ['d-2', 'd-5', 'd-1', 'd-7', 'd-4', 'd-6', 'd-3'] },
      { sort: 'expiry' as const, status: 'active' as const, expected: ['d-5', 'd-1', 'd-7', 'd-4', 'd-6', 'd-3'] },
      { sort: 'expiry' as const, status: 'revoked' as const, expected: ['d-2'] },
    ])('by $sort, status $status, in order and in pages', async ({ sort, status, expected }) => {
      const store = browsed.shared();
      const whole = await store.browseDevices({ sort, status, limit: 100 });
      expect(whole.items.map((d) => d.id)).toEqual(expected);
      expect(whole.nextCursor).toBeNull();
      for (const limit of [1, 3]) {
        const pages = await allPages((cursor) => store.browseDevices({ sort, status, limit, cursor }));
        expect(pages.flat()).toEqual(whole.items);
        expect(pages.every((page) => page.length <= limit)).toBe(true);
      }
    });

    it('gives each device with its current certificate’s expiry', async () => {
      const store = browsed.shared();
      const { items } = await store.browseDevices({ sort: 'expiry', limit: 100 });
      for (const device of items) {
        expect(device.currentNotAfter).toEqual(atDay(expiries[ids.indexOf(device.id)]!));
        expect(device).toEqual({ ...(await store.findDevice(device.id)), currentNotAfter: device.currentNotAfter });
      }
    });

    it('keeps the pages of the enrollment order stable while devices enroll', async () => {
      const store = await stores.fresh();
      await fleet(store, ids, expiries);
      const first = await store.browseDevices({ sort: 'enrolled', limit: 3 });
      // The newest of all: it belongs before the page already read, not in the next ones.
      await enroll(store, 'd-8', { now: at(30) });
      const rest = await allPages((cursor) => store.browseDevices({ sort: 'enrolled', limit: 3, cursor: cursor ?? first.nextCursor! }));
      expect([...first.items, ...rest.flat()].map((d) => d.id)).toEqual(['d-7', 'd-6', 'd-5', 'd-4', 'd-3', 'd-2', 'd-1']);
    });
  });

  it('counts the fleet and the certificates about to expire', async () => {
    const store = await stores.fresh();
    await fleet(store, ['in-5-days', 'in-20-days', 'in-100-days', 'revoked', 'expired'], [5, 20, 100, 6, -1]);
    await store.revokeDevice('revoked', 'unspecified', audit('devices.revoke'));
    await store.recordOperator({ name: 'alice', role: 'admin', createdBy: 'cli:root', certificate: operatorCertificate('alice', { notAfter: atDay(6) }) }, audit('operators.issue'));

    expect(await store.countFleet(at(0), atDay(30))).toEqual({ active: 4, revoked: 1, expiringSoon: 2 });
    expect(await store.countFleet(at(0), atDay(5))).toEqual({ active: 4, revoked: 1, expiringSoon: 1 });
    // The gauges count every active certificate, operators' too.
    expect(await store.countExpiring(at(0), atDay(7), atDay(30))).toEqual({ soon: 2, later: 3 });
    expect(await store.countExpiring(atDay(10), atDay(30), atDay(200))).toEqual({ soon: 1, later: 2 });
  });

  it('lists certificates by device, kind and status, a page at a time', async () => {
    const store = await stores.fresh();
    const a = await enroll(store, 'a');
    const b = await enroll(store, 'b');
    const c = await enroll(store, 'c');
    await store.recordOperator({ name: 'alice', role: 'admin', createdBy: 'cli:root', certificate: operatorCertificate('alice') }, audit('operators.issue'));
    await store.revokeCertificate(b.certificate.serial, 'unspecified', audit('certificates.revoke'));

    const serials = async (query: Parameters<Store['listCertificates']>[0]) => (await store.listCertificates(query)).items.map((cert) => cert.serial).sort();
    expect(await serials({ deviceId: 'a', limit: 10 })).toEqual([a.certificate.serial]);
    expect(await serials({ kind: 'device', status: 'active', limit: 10 })).toEqual([a.certificate.serial, c.certificate.serial].sort());
    expect(await serials({ status: 'revoked', limit: 10 })).toEqual([b.certificate.serial]);
    expect((await store.listCertificates({ kind: 'operator', limit: 10 })).items.map((cert) => [cert.subject, cert.deviceId])).toEqual([['alice', null]]);

    const everything = (await store.listCertificates({ limit: 10 })).items;
    expect(everything).toHaveLength(4);
    const pages = await allPages((cursor) => store.listCertificates({ limit: 3, cursor }));
    expect(pages.map((page) => page.length)).toEqual([3, 1]);
    expect(pages.flat()).toEqual(everything);
  });

  it("answers the status of the server's own certificate, and of no unknown one", async () => {
    const store = stores.shared();
    const server = { serial: newSerial(), subject: 'imprint.example', notBefore: at(-5), notAfter: atDay(365), issuedAt: at(0), der: randomBytes(48) };
    await store.recordServerCertificate(server);
    // Recorded again at the next start: no harm.
    await store.recordServerCertificate(server);
    expect(await store.certificateStatus(server.serial)).toEqual({ status: 'active', revokedAt: null, revocationReason: null });
    expect(await store.certificateStatus(newSerial())).toBeUndefined();
    expect(await store.findCertificate(newSerial())).toBeUndefined();
  });
});
