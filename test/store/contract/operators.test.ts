/**
 * Store contract, operators: one active identity per name, re-issued once revoked; revoking
 * one revokes its certificates and the unused tokens it minted.
 */
import { describe, expect, it } from 'vitest';
import { at, audit, mint, newId, operatorCertificate, redeem, redemption, useStores } from './harness.js';
import { STORES } from './stores.js';

describe.each(STORES)('$name store: operators', (backend) => {
  const stores = useStores(backend);

  it('records an operator with its certificate, and refuses a second while it is active', async () => {
    const store = stores.shared();
    const name = newId('op');
    const certificate = operatorCertificate(name);
    const issued = audit('operators.issue', { at: at(3), detail: { name } });
    expect(await store.recordOperator({ name, role: 'provisioner', createdBy: 'cli:root', certificate }, issued)).toEqual({ ok: true });
    expect(await store.findOperator(name)).toEqual({ name, role: 'provisioner', status: 'active', createdAt: at(3), createdBy: 'cli:root', revokedAt: null });
    expect(await store.findCertificate(certificate.serial)).toMatchObject({ kind: 'operator', subject: name, deviceId: null, status: 'active' });

    const second = operatorCertificate(name);
    expect(await store.recordOperator({ name, role: 'admin', createdBy: 'cli:root', certificate: second }, issued)).toEqual({ ok: false, conflict: 'operator_exists' });
    expect(await store.findCertificate(second.serial)).toBeUndefined();
    expect(await store.findOperator(name)).toMatchObject({ role: 'provisioner' });
    expect(await store.findOperator(newId('op'))).toBeUndefined();
  });

  it('revokes an operator, its certificates and the unused tokens it minted that could still be used', async () => {
    const store = stores.shared();
    const name = newId('op');
    const creator = `operator:${name}`;
    const certificate = operatorCertificate(name);
    await store.recordOperator({ name, role: 'admin', createdBy: 'cli:root', certificate }, audit('operators.issue'));
    const [unused, another, used] = [await mint(store, { createdBy: creator }), await mint(store, { createdBy: creator }), await mint(store, { createdBy: creator })];
    const someoneElses = await mint(store, { createdBy: 'operator:someone-else' });
    // Expired before the revocation: it can enroll nothing, so it stays as it is (expired).
    const expired = await mint(store, { createdBy: creator, expiresAt: at(4) });
    await redeem(store, redemption(used, newId()));
    const seq = await store.revocationSeq();

    const result = await store.revokeOperator(name, creator, 'privilegeWithdrawn', audit('operators.revoke', { at: at(5) }));
    expect(result).toMatchObject({ revoked: [certificate.serial], revokedTokens: 2, operator: { name, status: 'revoked', revokedAt: at(5) } });
    expect(result!.seq).toBeGreaterThan(seq);
    expect(await store.certificateStatus(certificate.serial)).toEqual({ status: 'revoked', revokedAt: at(5), revocationReason: 'privilegeWithdrawn' });
    for (const token of [unused, another]) expect((await store.findTokenByHash(token.hash))?.revokedAt).toEqual(at(5));
    expect((await store.findTokenByHash(used.hash))?.revokedAt).toBeNull();
    expect((await store.findTokenByHash(someoneElses.hash))?.revokedAt).toBeNull();
    expect((await store.findTokenByHash(expired.hash))?.revokedAt).toBeNull();

    const again = await store.revokeOperator(name, creator, 'privilegeWithdrawn', audit('operators.revoke', { at: at(6) }));
    expect(again).toEqual({ revoked: [], seq: result!.seq, revokedTokens: 0, operator: result!.operator });
    expect(await store.revokeOperator(newId('op'), 'operator:nobody', 'unspecified', audit('operators.revoke'))).toBeUndefined();
  });

  it('re-issues a revoked operator, with its new role and certificate', async () => {
    const store = stores.shared();
    const name = newId('op');
    await store.recordOperator({ name, role: 'admin', createdBy: 'cli:root', certificate: operatorCertificate(name) }, audit('operators.issue'));
    await store.revokeOperator(name, `operator:${name}`, 'unspecified', audit('operators.revoke', { at: at(5) }));
    const certificate = operatorCertificate(name);
    expect(await store.recordOperator({ name, role: 'provisioner', createdBy: 'operator:alice', certificate }, audit('operators.issue', { at: at(9) }))).toEqual({ ok: true });
    expect(await store.findOperator(name)).toEqual({ name, role: 'provisioner', status: 'active', createdAt: at(9), createdBy: 'operator:alice', revokedAt: null });
    expect(await store.certificateStatus(certificate.serial)).toMatchObject({ status: 'active' });
  });

  it('lists operators by name', async () => {
    const store = await stores.fresh();
    for (const name of ['carol', 'alice', 'bob']) {
      await store.recordOperator({ name, role: 'admin', createdBy: 'cli:root', certificate: operatorCertificate(name) }, audit('operators.issue'));
    }
    await store.revokeOperator('bob', 'operator:bob', 'unspecified', audit('operators.revoke'));
    expect((await store.listOperators()).map((operator) => [operator.name, operator.status])).toEqual([
      ['alice', 'active'],
      ['bob', 'revoked'],
      ['carol', 'active'],
    ]);
  });
});
