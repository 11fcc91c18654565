/**
 * Store contract, redemption: a token enrolls exactly one device, once, also under
 * concurrent attempts; every refusal writes nothing (the token stays unused); keys are
 * never certified twice; ids bound to waiting tokens are reserved; re-provisioning
 * supersedes a device's earlier certificates.
 */
import { describe, expect, it } from 'vitest';
import type { Redemption } from '../../../src/enrollment/model.js';
import { at, atDay, audit, enroll, hex, mint, newId, newToken, operatorCertificate, redeem, redemption, renewal, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: redemption', (backend) => {
  const stores = useStores(backend);

  /** Asserts that a refused redemption left no trace: the token unused, no certificate. */
  async function expectNothingWritten(r: Redemption): Promise<void> {
    const store = stores.shared();
    expect(await store.findCertificate(r.certificate.serial)).toBeUndefined();
    const token = (await store.listTokens({ limit: 1000, now: r.now })).items.find((t) => t.id === r.tokenId);
    if (token) expect(token).toMatchObject({ usedAt: null, usedByDevice: null, csrSha256: null, serial: null });
  }

  it('records the device, its certificate and the token it used, for a retry to find', async () => {
    const store = stores.shared();
    const token = await mint(store);
    const deviceId = newId();
    const r = await redeem(store, redemption(token, deviceId));

    expect(await store.findDevice(deviceId)).toEqual({
      id: deviceId,
      status: 'active',
      enrolledAt: at(1),
      updatedAt: at(1),
      currentSerial: r.certificate.serial,
      revokedAt: null,
      revocationReason: null,
      retiringSerial: null,
      retireAt: null,
      enrolledVia: 'json',
      enrollmentLabel: null,
    });
    const { renewedFrom: _renewedFrom, csrSha256: _csr, ...certificate } = r.certificate;
    expect(await store.findCertificate(r.certificate.serial)).toEqual({ ...certificate, status: 'active', revokedAt: null, revocationReason: null });
    // What a retry with the same token compares its CSR with, and the certificate it gets back.
    expect(await store.findTokenByHash(token.hash)).toMatchObject({ usedAt: at(1), usedByDevice: deviceId, csrSha256: r.csrSha256, serial: r.certificate.serial });
    expect(await store.existingDeviceIds([deviceId, newId()])).toEqual([deviceId]);
  });

  it('records the protocol and label a device enrolled through', async () => {
    const store = stores.shared();
    const deviceId = newId();
    await enroll(store, deviceId, { via: { protocol: 'est', label: 'line-3' } });
    expect(await store.findDevice(deviceId)).toMatchObject({ enrolledVia: 'est', enrollmentLabel: 'line-3' });
    const scep = newId();
    await enroll(store, scep, { via: { protocol: 'scep' } });
    expect(await store.findDevice(scep)).toMatchObject({ enrolledVia: 'scep', enrollmentLabel: null });
  });

  it('redeems a token once under 30 concurrent attempts', async () => {
    const store = await stores.fresh();
    const token = await mint(store);
    const attempts = Array.from({ length: 30 }, () => redemption(token, newId()));
    const results = await Promise.all(attempts.map((r) => store.redeemTokenAndRecordCertificate(r)));

    const winners = attempts.filter((_, i) => results[i]!.ok);
    expect(winners).toHaveLength(1);
    expect(results.filter((result) => !result.ok)).toEqual(Array(29).fill({ ok: false, conflict: 'token_unavailable' }));
    const winner = winners[0]!;
    expect(await store.findTokenByHash(token.hash)).toMatchObject({ usedByDevice: winner.certificate.deviceId, serial: winner.certificate.serial, csrSha256: winner.csrSha256 });
    expect(await store.existingDeviceIds(attempts.map((r) => r.certificate.deviceId))).toEqual([winner.certificate.deviceId]);
    const certificates = await store.listCertificates({ limit: 100 });
    expect(certificates.items.map((c) => c.serial)).toEqual([winner.certificate.serial]);
    expect((await store.browseAudit({ action: 'enroll', limit: 100 })).items).toHaveLength(1);
  });

  it.each([
    { name: 'token/used', token: {}, used: true },
    { name: 'token/revoked', token: {}, revoke: true },
    { name: 'token/expired', token: { expiresAt: at(1) } },
    { name: 'token/unknown', token: {}, unknown: true },
  ])('$name is token_unavailable', async ({ token: fields, used, revoke, unknown }) => {
    const store = stores.shared();
    const token = unknown ? newToken(fields) : await mint(store, fields);
    if (used) await redeem(store, redemption(token, newId()));
    if (revoke) await store.revokeToken(token.id, audit('tokens.revoke'));
    const before = await store.findTokenByHash(token.hash);
    const r = await redeem(store, redemption(token, newId()), 'token_unavailable');
    expect(await store.findDevice(r.certificate.deviceId)).toBeUndefined();
    expect(await store.findCertificate(r.certificate.serial)).toBeUndefined();
    expect(await store.findTokenByHash(token.hash)).toEqual(before);
  });

  it.each([
    { name: 'device/existing', conflict: 'device' },
    { name: 'key/of-another-device', conflict: 'key' },
    { name: 'device/reserved', conflict: 'reserved' },
  ] as const)('a used token is token_unavailable before $name', async ({ conflict }) => {
    const store = stores.shared();
    const other = await enroll(store);
    const token = await mint(store);
    const first = await redeem(store, redemption(token, newId()));
    // What else the retry would run into: the device its first attempt made, another
    // device's key, an id bound to a waiting token.
    const deviceId = conflict === 'device' ? first.certificate.deviceId : newId();
    if (conflict === 'reserved') await mint(store, { deviceId });
    const spkiSha256 = { device: first.certificate.spkiSha256, key: other.certificate.spkiSha256, reserved: hex(32) }[conflict];
    const before = await store.findTokenByHash(token.hash);
    await redeem(store, redemption(token, deviceId, { certificate: { spkiSha256 } }), 'token_unavailable');
    expect(await store.findTokenByHash(token.hash)).toEqual(before);
  });

  it('answers attempts of one token for one device at once: one enrolls, the others hear token_unavailable', async () => {
    const store = await stores.fresh();
    const token = await mint(store);
    const deviceId = newId();
    const spkiSha256 = hex(32);
    const attempts = Array.from({ length: 5 }, () => redemption(token, deviceId, { certificate: { spkiSha256 } }));
    const results = await Promise.all(attempts.map((r) => store.redeemTokenAndRecordCertificate(r)));
    expect(results.filter((result) => result.ok)).toHaveLength(1);
    expect(results.filter((result) => !result.ok)).toEqual(Array(4).fill({ ok: false, conflict: 'token_unavailable' }));
    expect((await store.listCertificates({ limit: 10 })).items).toHaveLength(1);
  });

  describe('key_reused', () => {
    it('refuses a key certified for another device', async () => {
      const store = stores.shared();
      const first = await enroll(store);
      const r = await redeem(store, redemption(await mint(store), newId(), { certificate: { spkiSha256: first.certificate.spkiSha256 } }), 'key_reused');
      await expectNothingWritten(r);
      expect(await store.findDevice(r.certificate.deviceId)).toBeUndefined();
    });

    it("refuses an operator's key", async () => {
      const store = stores.shared();
      const name = newId('op');
      const certificate = operatorCertificate(name);
      await store.recordOperator({ name, role: 'admin', createdBy: 'cli:root', certificate }, audit('operators.issue'));
      const r = await redeem(store, redemption(await mint(store), newId(), { certificate: { spkiSha256: certificate.spkiSha256 } }), 'key_reused');
      await expectNothingWritten(r);
    });

    it('refuses a key once revoked for keyCompromise, even for the same device', async () => {
      const store = stores.shared();
      const device = await enroll(store);
      const deviceId = device.certificate.deviceId;
      await store.revokeCertificate(device.certificate.serial, 'keyCompromise', audit('certificates.revoke'));
      const token = await mint(store, { deviceId, mayReprovision: true });
      const r = await redeem(store, redemption(token, deviceId, { certificate: { spkiSha256: device.certificate.spkiSha256 } }), 'key_reused');
      await expectNothingWritten(r);
      expect((await store.findDevice(deviceId))?.currentSerial).toBe(device.certificate.serial);
    });

    it('marks every key a device ever had when it is revoked for keyCompromise, those it renewed away from too', async () => {
      const store = stores.shared();
      const first = await enroll(store);
      const deviceId = first.certificate.deviceId;
      const renewed = renewal(deviceId, first.certificate.serial);
      expect(await store.recordRenewal(renewed)).toEqual({ ok: true });
      await store.retireReplaced(deviceId, renewed.certificate.serial, 'superseded', audit('renew.retire', { at: at(3) }));
      expect(await store.findCertificate(first.certificate.serial)).toMatchObject({ status: 'revoked', revocationReason: 'superseded' });

      await store.revokeDevice(deviceId, 'keyCompromise', audit('devices.revoke', { at: at(4) }));
      // The superseded certificate keeps its reason (the CRL says so), yet its key is marked.
      expect(await store.findCertificate(first.certificate.serial)).toMatchObject({ revocationReason: 'superseded' });
      for (const spkiSha256 of [first.certificate.spkiSha256, renewed.certificate.spkiSha256]) {
        const token = await mint(store, { deviceId, mayReprovision: true });
        await expectNothingWritten(await redeem(store, redemption(token, deviceId, { now: at(5), certificate: { spkiSha256 } }), 'key_reused'));
      }
      const events = await store.listAudit({ limit: 10_000 });
      expect(events.find((event) => event.action === 'devices.revoke' && event.deviceId === deviceId)?.detail).toMatchObject({ reason: 'keyCompromise', keysMarked: 2 });
    });

    it('marks the key of a certificate already revoked for another reason when it is revoked again for keyCompromise', async () => {
      const store = stores.shared();
      const device = await enroll(store);
      const deviceId = device.certificate.deviceId;
      const serial = device.certificate.serial;
      await store.revokeCertificate(serial, 'superseded', audit('certificates.revoke', { at: at(2) }));
      const seq = await store.revocationSeq();
      const again = await store.revokeCertificate(serial, 'keyCompromise', audit('certificates.revoke', { at: at(3) }));
      // Its revocation (and so the CRL) stays as it was.
      expect(again).toMatchObject({ revoked: [], seq, certificate: { status: 'revoked', revokedAt: at(2), revocationReason: 'superseded' } });
      const token = await mint(store, { deviceId, mayReprovision: true });
      await expectNothingWritten(await redeem(store, redemption(token, deviceId, { now: at(4), certificate: { spkiSha256: device.certificate.spkiSha256 } }), 'key_reused'));
      // Marked once: asking again changes nothing and writes no second event.
      const events = async () => (await store.listAudit({ limit: 10_000 })).filter((event) => event.serial === serial && event.action === 'certificates.revoke');
      expect((await events()).map((event) => event.detail)).toMatchObject([{ reason: 'superseded' }, { reason: 'keyCompromise', keysMarked: 1 }]);
      await store.revokeCertificate(serial, 'keyCompromise', audit('certificates.revoke', { at: at(5) }));
      expect(await events()).toHaveLength(2);
    });

    it('revokes every active certificate with a key a keyCompromise revocation marks, a renewal that kept the key included', async () => {
      const store = stores.shared();
      // Marked through the new certificate: the one it renewed from (same key, still honoured) goes too.
      const first = await enroll(store);
      const deviceId = first.certificate.deviceId;
      const kept = renewal(deviceId, first.certificate.serial, { certificate: { spkiSha256: first.certificate.spkiSha256 } });
      expect(await store.recordRenewal(kept)).toEqual({ ok: true });
      const revoked = await store.revokeCertificate(kept.certificate.serial, 'keyCompromise', audit('certificates.revoke', { at: at(3) }));
      expect(new Set(revoked?.revoked)).toEqual(new Set([first.certificate.serial, kept.certificate.serial]));
      for (const serial of [first.certificate.serial, kept.certificate.serial]) {
        expect(await store.findCertificate(serial)).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
      }

      // Marked through a certificate already superseded: the current one with its key goes.
      const second = await enroll(store);
      const other = second.certificate.deviceId;
      const again = renewal(other, second.certificate.serial, { certificate: { spkiSha256: second.certificate.spkiSha256 } });
      expect(await store.recordRenewal(again)).toEqual({ ok: true });
      await store.retireReplaced(other, again.certificate.serial, 'superseded', audit('renew.retire', { at: at(3) }));
      const seq = await store.revocationSeq();
      expect(await store.revokeCertificate(second.certificate.serial, 'keyCompromise', audit('certificates.revoke', { at: at(4) }))).toMatchObject({
        revoked: [again.certificate.serial],
        certificate: { revocationReason: 'superseded' },
      });
      expect(await store.revocationSeq()).toBeGreaterThan(seq);
      expect(await store.findCertificate(again.certificate.serial)).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
    });

    it("accepts the device's own earlier key when it re-provisions", async () => {
      const store = stores.shared();
      const device = await enroll(store);
      const deviceId = device.certificate.deviceId;
      const token = await mint(store, { deviceId, mayReprovision: true });
      await redeem(store, redemption(token, deviceId, { certificate: { spkiSha256: device.certificate.spkiSha256 } }));
    });

    it('lets exactly one of two devices racing with the same key have it', async () => {
      const store = stores.shared();
      const spkiSha256 = hex(32);
      const attempts = await Promise.all(
        Array.from({ length: 6 }, async () => redemption(await mint(store), newId(), { certificate: { spkiSha256 } })),
      );
      const results = await Promise.all(attempts.map((r) => store.redeemTokenAndRecordCertificate(r)));
      expect(results.filter((result) => result.ok)).toHaveLength(1);
      expect(results.filter((result) => !result.ok)).toEqual(Array(5).fill({ ok: false, conflict: 'key_reused' }));
    });
  });

  describe('device ids', () => {
    it('refuses an existing device to an unbound token and to a bound token that may not re-provision', async () => {
      const store = stores.shared();
      const existing = (await enroll(store)).certificate.deviceId;
      await expectNothingWritten(await redeem(store, redemption(await mint(store), existing), 'device_exists'));
      const bound = await mint(store, { deviceId: existing, mayReprovision: false });
      await expectNothingWritten(await redeem(store, redemption(bound, existing), 'device_exists'));
    });

    it('gives a revoked device id to nobody but a token that may re-provision it', async () => {
      const store = stores.shared();
      const device = await enroll(store);
      const deviceId = device.certificate.deviceId;
      await store.revokeDevice(deviceId, 'cessationOfOperation', audit('devices.revoke'));
      await expectNothingWritten(await redeem(store, redemption(await mint(store), deviceId), 'device_exists'));
      await redeem(store, redemption(await mint(store, { deviceId, mayReprovision: true }), deviceId));
    });

    it('reserves an id bound to a token still waiting for its device', async () => {
      const store = stores.shared();
      const deviceId = newId();
      const bound = await mint(store, { deviceId });
      await expectNothingWritten(await redeem(store, redemption(await mint(store), deviceId), 'device_exists'));
      // The bound token itself takes it.
      await redeem(store, redemption(bound, deviceId));
    });

    it.each([
      { name: 'revoked', revoke: true, expiresAt: at(60) },
      { name: 'expired', revoke: false, expiresAt: at(1) },
    ])('frees the id once the token bound to it is $name', async ({ revoke, expiresAt }) => {
      const store = stores.shared();
      const deviceId = newId();
      const bound = await mint(store, { deviceId, expiresAt });
      if (revoke) await store.revokeToken(bound.id, audit('tokens.revoke'));
      await redeem(store, redemption(await mint(store), deviceId));
    });

    it('lets exactly one of several unbound tokens racing for one id have it', async () => {
      const store = stores.shared();
      const deviceId = newId();
      const attempts = await Promise.all(Array.from({ length: 6 }, async () => redemption(await mint(store), deviceId)));
      const results = await Promise.all(attempts.map((r) => store.redeemTokenAndRecordCertificate(r)));
      expect(results.filter((result) => result.ok)).toHaveLength(1);
      expect(results.filter((result) => !result.ok)).toEqual(Array(5).fill({ ok: false, conflict: 'device_exists' }));
      for (const [i, r] of attempts.entries()) if (!results[i]!.ok) await expectNothingWritten(r);
    });
  });

  describe('re-provisioning', () => {
    it('reactivates a revoked device; certificates revoked before keep their reason', async () => {
      const store = stores.shared();
      const first = await enroll(store);
      const deviceId = first.certificate.deviceId;
      const renewed = renewal(deviceId, first.certificate.serial);
      expect(await store.recordRenewal(renewed)).toEqual({ ok: true });
      await store.revokeDevice(deviceId, 'keyCompromise', audit('devices.revoke', { at: at(3) }));
      const seq = await store.revocationSeq();

      const token = await mint(store, { deviceId, mayReprovision: true });
      const r = await redeem(store, redemption(token, deviceId, { now: at(10), supersede: 'affiliationChanged', via: { protocol: 'est', label: 'rma' } }));
      expect(await store.findDevice(deviceId)).toMatchObject({
        status: 'active',
        enrolledAt: at(1),
        updatedAt: at(10),
        currentSerial: r.certificate.serial,
        revokedAt: null,
        revocationReason: null,
        retiringSerial: null,
        retireAt: null,
        enrolledVia: 'est',
        enrollmentLabel: 'rma',
      });
      // Already revoked for keyCompromise: they keep that reason.
      expect(await store.certificateStatus(first.certificate.serial)).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
      expect(await store.revocationSeq()).toBe(seq);
      const [event] = (await store.browseAudit({ deviceId, action: 'enroll.reprovision', limit: 10 })).items;
      expect(event).toMatchObject({ serial: r.certificate.serial, detail: { previousStatus: 'revoked', previousReason: 'keyCompromise', superseded: [] } });
    });

    it('supersedes active certificates with the reason passed in, bumping the revocation sequence', async () => {
      const store = stores.shared();
      const first = await enroll(store);
      const deviceId = first.certificate.deviceId;
      const renewed = renewal(deviceId, first.certificate.serial);
      expect(await store.recordRenewal(renewed)).toEqual({ ok: true });
      const seq = await store.revocationSeq();

      const token = await mint(store, { deviceId, mayReprovision: true });
      const r = await redeem(store, redemption(token, deviceId, { now: at(10), supersede: 'affiliationChanged' }));
      for (const serial of [first.certificate.serial, renewed.certificate.serial]) {
        expect(await store.certificateStatus(serial)).toEqual({ status: 'revoked', revokedAt: at(10), revocationReason: 'affiliationChanged' });
      }
      expect(await store.certificateStatus(r.certificate.serial)).toEqual({ status: 'active', revokedAt: null, revocationReason: null });
      expect(await store.revocationSeq()).toBeGreaterThan(seq);
      expect((await store.revokedSince(seq)).sort()).toEqual([first.certificate.serial, renewed.certificate.serial].sort());
      expect(await store.findDevice(deviceId)).toMatchObject({ status: 'active', currentSerial: r.certificate.serial, retiringSerial: null, retireAt: null });
      const [event] = (await store.browseAudit({ deviceId, action: 'enroll.reprovision', limit: 10 })).items;
      expect(event?.detail).toMatchObject({ previousStatus: 'active', previousReason: null });
      expect((event?.detail?.superseded as string[]).sort()).toEqual([first.certificate.serial, renewed.certificate.serial].sort());
      // A plain enrollment is audited under the action it came with.
      expect((await store.browseAudit({ deviceId, action: 'enroll', limit: 10 })).items).toHaveLength(1);
    });

    it('creates the device when a re-provisioning token finds none', async () => {
      const store = stores.shared();
      const deviceId = newId();
      const token = await mint(store, { deviceId, mayReprovision: true, expiresAt: atDay(1) });
      await redeem(store, redemption(token, deviceId));
      expect(await store.findDevice(deviceId)).toMatchObject({ status: 'active' });
      expect((await store.browseAudit({ deviceId, limit: 10 })).items.map((event) => event.action)).toEqual(['enroll']);
    });
  });
});
