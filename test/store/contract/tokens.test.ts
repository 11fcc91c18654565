/** Store contract, tokens: minting, finding, listing by status and label, revoking, batches. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { allPages, at, audit, enroll, mint, newId, newToken, operatorCertificate, redeem, redemption, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: tokens', (backend) => {
  const stores = useStores(backend);

  it('finds a token by its hash with every field as minted', async () => {
    const store = stores.shared();
    const bound = newToken({ label: newId('batch'), deviceId: newId(), mayReprovision: true, createdBy: 'cli:root' });
    const unbound = newToken();
    expect(await store.createTokens([bound, unbound], audit('tokens.create'))).toEqual({ ok: true });
    const { hash: _bound, ...boundFields } = bound;
    expect(await store.findTokenByHash(bound.hash)).toEqual({ ...boundFields, usedAt: null, usedByDevice: null, csrSha256: null, serial: null, revokedAt: null });
    expect(await store.findTokenByHash(unbound.hash)).toMatchObject({ id: unbound.id, label: null, deviceId: null, mayReprovision: false });
    expect(await store.findTokenByHash(randomBytes(32))).toBeUndefined();
  });

  it('mints for an operator only while it is active', async () => {
    const store = stores.shared();
    const name = newId('op');
    const unknown = newToken();
    expect(await store.createTokens([unknown], audit('tokens.create'), name)).toEqual({ ok: false });
    expect(await store.findTokenByHash(unknown.hash)).toBeUndefined();

    await store.recordOperator({ name, role: 'provisioner', createdBy: 'cli:root', certificate: operatorCertificate(name) }, audit('operators.issue'));
    const minted = newToken({ createdBy: `operator:${name}` });
    expect(await store.createTokens([minted], audit('tokens.create'), name)).toEqual({ ok: true });
    expect(await store.findTokenByHash(minted.hash)).toBeDefined();

    await store.revokeOperator(name, `operator:${name}`, 'privilegeWithdrawn', audit('operators.revoke'));
    const late = newToken({ createdBy: `operator:${name}` });
    expect(await store.createTokens([late], audit('tokens.create'), name)).toEqual({ ok: false });
    expect(await store.findTokenByHash(late.hash)).toBeUndefined();
  });

  it('revokes an unused token once, and neither a used one nor an unknown id', async () => {
    const store = stores.shared();
    const token = await mint(store);
    const revoked = await store.revokeToken(token.id, audit('tokens.revoke', { at: at(5), tokenId: token.id }));
    expect(revoked).toMatchObject({ id: token.id, revokedAt: at(5), usedAt: null });
    // Again: the token as it stands, still revoked when it first was.
    expect(await store.revokeToken(token.id, audit('tokens.revoke', { at: at(6) }))).toMatchObject({ revokedAt: at(5) });

    const used = await enroll(store);
    expect(await store.revokeToken(used.tokenId, audit('tokens.revoke'))).toMatchObject({ id: used.tokenId, revokedAt: null, serial: used.certificate.serial });
    expect(await store.revokeToken(newId('tok'), audit('tokens.revoke'))).toBeUndefined();
  });

  it('revokes the unused tokens of a batch and counts them', async () => {
    const store = stores.shared();
    const label = newId('batch');
    const [a, b, used, revoked] = [newToken({ label }), newToken({ label }), newToken({ label }), newToken({ label })];
    const other = newToken({ label: newId('batch') });
    await store.createTokens([a!, b!, used!, revoked!, other], audit('tokens.create'));
    await redeem(store, redemption(used!, newId()));
    await store.revokeToken(revoked!.id, audit('tokens.revoke', { at: at(1) }));

    expect(await store.revokeTokensByLabel(label, audit('tokens.revoke', { at: at(2) }))).toBe(2);
    expect((await store.findTokenByHash(a!.hash))?.revokedAt).toEqual(at(2));
    expect((await store.findTokenByHash(used!.hash))?.revokedAt).toBeNull();
    expect((await store.findTokenByHash(revoked!.hash))?.revokedAt).toEqual(at(1));
    expect((await store.findTokenByHash(other.hash))?.revokedAt).toBeNull();
    expect(await store.revokeTokensByLabel(label, audit('tokens.revoke'))).toBe(0);
  });

  it('lists tokens by status at a given time, by label, a page at a time', async () => {
    const store = await stores.fresh();
    const label = 'line-3';
    const unused = [newToken({ label }), newToken(), newToken({ label })];
    const expired = newToken({ label, expiresAt: at(-1) });
    const revoked = newToken({ label });
    const used = newToken();
    await store.createTokens([...unused, expired, revoked, used], audit('tokens.create'));
    await store.revokeToken(revoked.id, audit('tokens.revoke'));
    await redeem(store, redemption(used, newId()));

    const ids = async (query: { status?: 'unused' | 'used' | 'expired' | 'revoked'; label?: string }, now = at(0)) =>
      (await store.listTokens({ ...query, limit: 100, now })).items.map((token) => token.id).sort();
    expect(await ids({ status: 'unused' })).toEqual(unused.map((token) => token.id).sort());
    expect(await ids({ status: 'expired' })).toEqual([expired.id]);
    expect(await ids({ status: 'revoked' })).toEqual([revoked.id]);
    expect(await ids({ status: 'used' })).toEqual([used.id]);
    expect(await ids({ label })).toEqual([unused[0]!.id, unused[2]!.id, expired.id, revoked.id].sort());
    expect(await ids({ status: 'unused', label })).toEqual([unused[0]!.id, unused[2]!.id].sort());
    expect(await ids({ label: 'no-such-batch' })).toEqual([]);
    // Two hours on, every token still unused has expired.
    expect(await ids({ status: 'expired' }, at(120))).toEqual([...unused, expired].map((token) => token.id).sort());

    const everything = (await store.listTokens({ limit: 100, now: at(0) })).items;
    expect(everything).toHaveLength(6);
    const pages = await allPages((cursor) => store.listTokens({ limit: 4, cursor, now: at(0) }));
    expect(pages.map((page) => page.length)).toEqual([4, 2]);
    expect(pages.flat()).toEqual(everything);
  });

  it('counts each batch by state, newest batch first', async () => {
    const store = await stores.fresh();
    const older = [newToken({ label: 'older', createdAt: at(-30), expiresAt: at(-10) }), newToken({ label: 'older', createdAt: at(-29) })];
    const newer = [newToken({ label: 'newer', createdAt: at(-5), createdBy: 'operator:bob' }), newToken({ label: 'newer', createdAt: at(-4), createdBy: 'operator:bob' })];
    const unlabelled = newToken({ createdAt: at(-20) });
    await store.createTokens([...older, unlabelled], audit('tokens.create'));
    await store.createTokens(newer, audit('tokens.create'));
    await store.revokeToken(newer[0]!.id, audit('tokens.revoke'));
    await redeem(store, redemption(older[1]!, newId()));

    expect(await store.listTokenBatches({ now: at(0), limit: 10 })).toEqual([
      { label: 'newer', firstCreatedAt: at(-5), lastCreatedAt: at(-4), lastExpiresAt: at(60), createdBy: 'operator:bob', total: 2, unused: 1, used: 0, expired: 0, revoked: 1 },
      { label: null, firstCreatedAt: at(-20), lastCreatedAt: at(-20), lastExpiresAt: at(60), createdBy: 'operator:alice', total: 1, unused: 1, used: 0, expired: 0, revoked: 0 },
      { label: 'older', firstCreatedAt: at(-30), lastCreatedAt: at(-29), lastExpiresAt: at(60), createdBy: 'operator:alice', total: 2, unused: 0, used: 1, expired: 1, revoked: 0 },
    ]);
    expect((await store.listTokenBatches({ now: at(0), limit: 1 })).map((batch) => batch.label)).toEqual(['newer']);
  });
});
