/**
 * The trust model at its edges, over real mTLS sockets: who may re-provision a device,
 * what a compromised or foreign key may never do again, renewal that retires the
 * certificate it replaces, the renewal limit, renewal after expiry, and what revoking an
 * operator or a used token does.
 */
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey, loadDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { query } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { enrollDevice, issueOperator, recordExpiredDevice, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

const DAY = 86_400_000;

let t: TestServer;
let admin: { cert: string; key: string };
let provisioner: { cert: string; key: string; serial: string };
beforeAll(async () => {
  t = await startTestServer(undefined, undefined, { renewal: { overlapMs: DAY, perDay: 4, afterExpiryMs: 0 } });
  admin = await issueOperator(t, 'trust-admin', 'admin');
  provisioner = await issueOperator(t, 'trust-line', 'provisioner');
});
afterAll(async () => {
  await t.destroy();
});

async function enrolled(id: string, token?: string): Promise<EnrolledDevice> {
  const device = await enrollDevice(t, id, token);
  expect(device.response.status, JSON.stringify(device.response.body)).toBe(201);
  return device;
}

const asOperator = (operator: { cert: string; key: string }, path: string, json?: unknown): Promise<Response> =>
  call(`${t.url}${path}`, { ca: t.rootPem, cert: operator.cert, key: operator.key, ...(json === undefined ? {} : { json }) });

const getDevice = (holder: { cert: string; key: DeviceKey }, url = t.url, rootPem = t.rootPem): Promise<Response> =>
  call(`${url}/v1/device`, { ca: rootPem, cert: holder.cert, key: holder.key.privateKeyPem });

/** Renews with `csrKey` (a fresh key unless given); returns the new holder with the response. */
async function renew(holder: { id: string; cert: string; key: DeviceKey }, csrKey?: DeviceKey, url = t.url, rootPem = t.rootPem) {
  const key = csrKey ?? (await generateDeviceKey());
  const response = await call(`${url}/v1/renew`, { ca: rootPem, json: { csr: buildCsr(key, holder.id) }, cert: holder.cert, key: holder.key.privateKeyPem });
  return { id: holder.id, key, cert: response.body.certificate as string, serial: response.body.serial as string, response };
}

const enrollWith = (key: DeviceKey, id: string, token: string) =>
  call(`${t.url}/v1/enroll`, { ca: t.rootPem, json: { csr: buildCsr(key, id) }, headers: { authorization: `Bearer ${token}` } });

const statusOf = (serial: string) =>
  query<{ status: string; revocation_reason: string | null }>(t.dataDir, 'SELECT status, revocation_reason FROM certificates WHERE serial = ?', serial)[0];

const tokenCount = () => query<{ n: number }>(t.dataDir, 'SELECT count(*) AS n FROM tokens')[0]!.n;

describe('binding a token to an existing device is an admin act', () => {
  it.each([
    ['active', false],
    ['revoked', true],
  ])('a provisioner cannot bind the id of an %s device: 403, nothing minted', async (state, revoke) => {
    const id = `bind-${state}`;
    await enrolled(id);
    if (revoke) await t.server.instance.fleet.revokeDevice(id, 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    const before = tokenCount();
    const refused = await asOperator(provisioner, '/v1/admin/tokens', { deviceIds: ['bind-fresh-1', id] });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('forbidden');
    expect(refused.body.message).toContain(id);
    expect(tokenCount()).toBe(before);
  });

  it('a provisioner may pre-bind ids no device has yet, and an admin may bind existing ones', async () => {
    await enrolled('bind-admin');
    const line = await asOperator(provisioner, '/v1/admin/tokens', { deviceIds: ['bind-new-1', 'bind-new-2'] });
    expect(line.status).toBe(201);
    const byAdmin = await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['bind-admin'] });
    expect(byAdmin.status).toBe(201);
    expect((await enrollDevice(t, 'bind-new-1', line.body.tokens[0].token)).response.status).toBe(201);
  });

  it("a provisioner's pre-bound token cannot take a device that appeared after minting", async () => {
    const minted = await asOperator(provisioner, '/v1/admin/tokens', { deviceIds: ['bind-race'] });
    expect(minted.status).toBe(201);
    // The real device arrives with another token bound to the same id (an unbound one may
    // not take a reserved id at all).
    const [ownerToken] = (await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['bind-race'] })).body.tokens;
    const owner = await enrolled('bind-race', ownerToken.token);
    const taker = await enrollDevice(t, 'bind-race', minted.body.tokens[0].token);
    expect(taker.response.status).toBe(409);
    expect(taker.response.body.error).toBe('device_exists');
    expect((await getDevice(owner)).status).toBe(200);
    expect(statusOf(owner.serial)?.status).toBe('active');
  });

  it("an admin's re-provisioning is audited as such, with what it superseded", async () => {
    const old = await enrolled('reprov-1');
    const minted = await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['reprov-1'] });
    const fresh = await enrollDevice(t, 'reprov-1', minted.body.tokens[0].token);
    expect(fresh.response.status).toBe(201);
    expect(statusOf(old.serial)).toEqual({ status: 'revoked', revocation_reason: 'superseded' });
    const [event] = query<{ action: string; detail: string }>(
      t.dataDir,
      "SELECT action, detail FROM audit_events WHERE device_id = 'reprov-1' AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
    );
    expect(event?.action).toBe('enroll.reprovision');
    expect(JSON.parse(event!.detail)).toMatchObject({ previousStatus: 'active', superseded: [old.serial] });
  });
});

describe('a key is never certified again once compromised, or when it belongs to another', () => {
  it('a keyCompromise key does not come back through re-provisioning, a new device, or renewal', async () => {
    const victim = await enrolled('kc-1');
    const revoked = await asOperator(admin, '/v1/admin/devices/kc-1/revoke', { reason: 'keyCompromise' });
    expect(revoked.status).toBe(200);
    const [minted] = (await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['kc-1'] })).body.tokens;
    const back = await enrollWith(victim.key, 'kc-1', minted.token);
    expect(back.status).toBe(409);
    expect(back.body.error).toBe('key_reused');
    const elsewhere = await enrollWith(victim.key, 'kc-elsewhere', (await t.mintToken()).token);
    expect(elsewhere.body.error).toBe('key_reused');
    // The admin's token still re-provisions kc-1 with a new key.
    expect((await enrollDevice(t, 'kc-1', minted.token)).response.status).toBe(201);

    // Renewal: a certificate revoked for keyCompromise while the one it replaced still works.
    const device = await enrolled('kc-2');
    const renewed = await renew(device);
    expect(renewed.response.status).toBe(201);
    expect((await asOperator(admin, `/v1/admin/certificates/${renewed.serial}/revoke`, { reason: 'keyCompromise' })).status).toBe(200);
    const again = await renew(device, renewed.key);
    expect(again.response.status).toBe(409);
    expect(again.response.body.error).toBe('key_reused');
  });

  it("another device's key and an operator's key are key_reused on enroll and on renew", async () => {
    const owner = await enrolled('kr-owner');
    const other = await enrolled('kr-other');
    const operatorKey = loadDeviceKey(createPrivateKey(admin.key).export({ type: 'pkcs8', format: 'pem' }) as string);
    for (const key of [owner.key, operatorKey]) {
      expect((await enrollWith(key, 'kr-new', (await t.mintToken()).token)).body.error).toBe('key_reused');
      expect((await renew(other, key)).response.body.error).toBe('key_reused');
    }
  });

  it('renewing with its own current key is allowed', async () => {
    const device = await enrolled('kr-same');
    const renewed = await renew(device, device.key);
    expect(renewed.response.status).toBe(201);
  });
});

describe('renewal retires the certificate it replaces', () => {
  it('the old certificate works until the new one is used, then never again', async () => {
    const device = await enrolled('ret-1');
    const renewed = await renew(device);
    expect(renewed.response.status).toBe(201);
    expect((await getDevice(device)).status).toBe(200); // the answer may have been lost: the old one still works
    expect(statusOf(device.serial)?.status).toBe('active');
    expect((await getDevice(renewed)).status).toBe(200); // first use of the new one
    expect(statusOf(device.serial)).toEqual({ status: 'revoked', revocation_reason: 'superseded' });
    const old = await getDevice(device);
    expect(old.status).toBe(401);
    expect(old.body.error).toBe('client_cert_invalid');
    const retired = query<{ action: string; serial: string }>(t.dataDir, "SELECT action, serial FROM audit_events WHERE device_id = 'ret-1' AND action = 'certificates.retire'");
    expect(retired).toEqual([{ action: 'certificates.retire', serial: device.serial }]);
  });

  it('a device holds at most two certificates however often its answer is lost', async () => {
    const device = await enrolled('ret-2');
    const first = await renew(device);
    const second = await renew(device); // renewed again with the old certificate
    expect(first.response.status).toBe(201);
    expect(second.response.status).toBe(201);
    const active = query<{ serial: string }>(t.dataDir, "SELECT serial FROM certificates WHERE device_id = 'ret-2' AND status = 'active' ORDER BY serial");
    expect(active.map((row) => row.serial).sort()).toEqual([device.serial, second.serial].sort());
    expect(statusOf(first.serial)?.revocation_reason).toBe('superseded');
  });

  it('the same renewal sent again gets the same certificate; once replaced, it gets nothing more', async () => {
    const device = await enrolled('ret-again');
    const send = (csr: string, holder: { cert: string; key: DeviceKey } = device) =>
      call(`${t.url}/v1/renew`, { ca: t.rootPem, json: { csr }, cert: holder.cert, key: holder.key.privateKeyPem });
    const [first, second] = [await generateDeviceKey(), await generateDeviceKey()];
    const csr1 = buildCsr(first, 'ret-again');
    const answered = await send(csr1);
    expect(answered.status).toBe(201);
    const again = await send(csr1); // the answer was lost: the device sends the same request
    expect(again.body.serial).toBe(answered.body.serial);
    expect(query(t.dataDir, "SELECT serial FROM certificates WHERE device_id = 'ret-again' AND status = 'active'")).toHaveLength(2);

    const other = await send(buildCsr(second, 'ret-again'));
    expect(other.status).toBe(201);
    const replayed = await send(csr1); // its certificate was superseded by the one just issued
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe('bad_request');
    expect(statusOf(other.body.serial)?.status).toBe('active');
  });

  it('renewals per device are limited: 429 rate_limited with Retry-After', async () => {
    let holder: { id: string; cert: string; key: DeviceKey } = await enrolled('limit-1');
    for (let i = 0; i < 4; i++) {
      const renewed = await renew(holder);
      expect(renewed.response.status).toBe(201);
      holder = renewed;
    }
    const refused = await renew(holder);
    expect(refused.response.status).toBe(429);
    expect(refused.response.body.error).toBe('rate_limited');
    const retryAfter = Number(refused.response.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(DAY / 1000 - 120);
    expect(retryAfter).toBeLessThanOrEqual(DAY / 1000);
    expect((await renew(await enrolled('limit-2'))).response.status).toBe(201); // another device is unaffected
  });
});

describe('the overlap ends on its own', () => {
  let short: TestServer;
  beforeAll(async () => {
    short = await startTestServer(undefined, undefined, { renewal: { overlapMs: 1_000, perDay: 10, afterExpiryMs: 0 } });
  });
  afterAll(async () => {
    await short.destroy();
  });

  it('the replaced certificate is revoked as superseded when the overlap ends, unused or not', async () => {
    const device = await enrollDevice(short, 'overlap-1');
    const renewed = await renew(device, undefined, short.url, short.rootPem);
    expect(renewed.response.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    const [row] = query<{ status: string; revocation_reason: string }>(short.dataDir, 'SELECT status, revocation_reason FROM certificates WHERE serial = ?', device.serial);
    expect(row).toEqual({ status: 'revoked', revocation_reason: 'superseded' });
    expect((await getDevice(device, short.url, short.rootPem)).status).toBe(401);
    expect((await getDevice(renewed, short.url, short.rootPem)).status).toBe(200);
  });
});

describe('operators and tokens', () => {
  it("revoking an operator revokes the unused tokens it minted, and says so in the audit log", async () => {
    const line = await issueOperator(t, 'line-9', 'provisioner');
    const minted = await asOperator(line, '/v1/admin/tokens', { count: 3, label: 'line-9-batch' });
    expect(minted.status).toBe(201);
    const [used, ...unused] = minted.body.tokens as { token: string }[];
    expect((await enrollDevice(t, 'line-9-dev', used!.token)).response.status).toBe(201);
    const result = await t.server.instance.signing().operators.revoke('line-9', { actor: 'cli:test', role: 'admin' });
    expect(result.revokedTokens).toBe(2);
    for (const token of unused) expect((await enrollDevice(t, 'line-9-late', token.token)).response.body.error).toBe('token_revoked');
    const [event] = query<{ detail: string }>(t.dataDir, "SELECT detail FROM audit_events WHERE action = 'operators.revoke' ORDER BY id DESC LIMIT 1");
    expect(JSON.parse(event!.detail)).toMatchObject({ name: 'line-9', revokedTokens: 2 });
  });

  it('revoking a used token is 409 token_used and changes nothing', async () => {
    const minted = await t.mintToken();
    await enrolled('used-token-dev', minted.token);
    const refused = await asOperator(admin, `/v1/admin/tokens/${minted.id}/revoke`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.error).toBe('token_used');
    expect(query<{ revoked_at: number | null }>(t.dataDir, 'SELECT revoked_at FROM tokens WHERE id = ?', minted.id)[0]?.revoked_at).toBeNull();
  });
});

describe('device ids are SPIFFE path segments', () => {
  it.each(['with:colon', 'with/slash', 'with%25', 'with space'])('%s is refused in a CSR and in a bound token', async (id) => {
    const device = await enrollDevice(t, id);
    expect(device.response.status).toBe(400);
    expect(device.response.body.error).toBe('csr_subject_invalid');
    expect((await asOperator(admin, '/v1/admin/tokens', { deviceIds: [id] })).body.error).toBe('bad_request');
  });
});

describe('renewal after expiry', () => {
  let late: TestServer;
  beforeAll(async () => {
    late = await startTestServer(undefined, undefined, { renewal: { overlapMs: DAY, perDay: 10, afterExpiryMs: 30 * DAY } });
  });
  afterAll(async () => {
    await late.destroy();
  });

  it('inside the window an expired certificate renews, and is good for nothing else', async () => {
    const device = await recordExpiredDevice(late, 'shelf-1', 2);
    expect((await getDevice(device, late.url, late.rootPem)).body.error).toBe('client_cert_invalid');
    const renewed = await renew(device, undefined, late.url, late.rootPem);
    expect(renewed.response.status, JSON.stringify(renewed.response.body)).toBe(201);
    expect((await getDevice(renewed, late.url, late.rootPem)).status).toBe(200);
  });

  it('outside the window, without one, or for a revoked device it does not', async () => {
    const tooLate = await recordExpiredDevice(late, 'shelf-2', 40);
    const refused = await renew(tooLate, undefined, late.url, late.rootPem);
    expect(refused.response.status).toBe(401);
    expect(refused.response.body.error).toBe('client_cert_invalid');

    const revoked = await recordExpiredDevice(late, 'shelf-3', 2);
    await late.server.instance.fleet.revokeDevice('shelf-3', 'cessationOfOperation', { actor: 'cli:test', role: 'admin' });
    const revokedRenewal = await renew(revoked, undefined, late.url, late.rootPem);
    expect(revokedRenewal.response.status).toBeGreaterThanOrEqual(401);
    expect(['device_revoked', 'client_cert_invalid']).toContain(revokedRenewal.response.body.error);

    const noWindow = await recordExpiredDevice(t, 'shelf-4', 2);
    const off = await renew(noWindow);
    expect(off.response.status).toBe(401);
    expect(off.response.body.error).toBe('client_cert_invalid');
  });
});

describe('races and leftovers an attacker would try', () => {
  it('an id bound to a waiting token is reserved: an unbound token cannot squat it', async () => {
    const minted = await asOperator(provisioner, '/v1/admin/tokens', { deviceIds: ['reserved-1'] });
    const squat = await enrollDevice(t, 'reserved-1');
    expect(squat.response.status).toBe(409);
    expect(squat.response.body).toMatchObject({ error: 'device_exists', message: expect.stringContaining('reserved') });
    expect((await enrollDevice(t, 'reserved-1', minted.body.tokens[0].token)).response.status).toBe(201);
    // Once the bound token is gone (revoked), the id is free again.
    const revoked = await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['reserved-2'] });
    expect((await asOperator(admin, `/v1/admin/tokens/${revoked.body.tokens[0].id}/revoke`, {})).status).toBe(200);
    expect((await enrollDevice(t, 'reserved-2')).response.status).toBe(201);
  });

  it('an operator revoked while its mint was in flight mints nothing', async () => {
    await issueOperator(t, 'line-gone', 'provisioner');
    const authenticated = { actor: 'operator:line-gone', role: 'provisioner' as const, operator: 'line-gone' };
    await t.server.instance.signing().operators.revoke('line-gone', { actor: 'cli:test', role: 'admin' });
    const before = tokenCount();
    await expect(t.server.instance.tokens.mint({ count: 5 }, authenticated)).rejects.toMatchObject({ code: 'client_cert_invalid' });
    expect(tokenCount()).toBe(before);
  });

  it('a renewal authenticated before a re-provisioning cannot supersede the new owner', async () => {
    const thief = await enrolled('race-1');
    const { signing } = { signing: t.server.instance.signing() };
    const identity = await signing.clients.device({ der: derOf(thief.cert), serial: thief.serial, verificationError: undefined });
    const [bound] = (await asOperator(admin, '/v1/admin/tokens', { deviceIds: ['race-1'] })).body.tokens;
    const owner = await enrollDevice(t, 'race-1', bound.token);
    expect(owner.response.status).toBe(201);
    const key = await generateDeviceKey();
    await expect(signing.enrollment.renew(identity, { csr: buildCsr(key, 'race-1') })).rejects.toMatchObject({ code: 'client_cert_invalid' });
    expect((await getDevice(owner)).status).toBe(200);
  });

  it('revoking a device revokes its expired certificates too: no renewal after expiry, and the key stays compromised', async () => {
    const late = await startTestServer(undefined, undefined, { renewal: { overlapMs: DAY, perDay: 10, afterExpiryMs: 30 * DAY } });
    try {
      const stolen = await recordExpiredDevice(late, 'stolen-1', 2);
      await late.server.instance.fleet.revokeDevice('stolen-1', 'keyCompromise', { actor: 'cli:test', role: 'admin' });
      const [row] = query<{ status: string; revocation_reason: string }>(late.dataDir, 'SELECT status, revocation_reason FROM certificates WHERE serial = ?', stolen.serial);
      expect(row).toEqual({ status: 'revoked', revocation_reason: 'keyCompromise' });
      const { tokens } = await late.server.instance.tokens.mint({ deviceIds: ['stolen-1'] }, { actor: 'cli:test', role: 'admin' });
      const owner = await enrollDevice(late, 'stolen-1', tokens[0]!.token);
      expect(owner.response.status).toBe(201);
      const back = await renew(stolen, stolen.key, late.url, late.rootPem);
      expect(back.response.status).toBe(401);
      expect(back.response.body.error).toBe('client_cert_invalid');
      expect((await getDevice(owner, late.url, late.rootPem)).status).toBe(200);
    } finally {
      await late.destroy();
    }
  });

  it('renewals are rate limited per device certificate before any signing', async () => {
    const limited = await startTestServer(undefined, { ...withoutRateLimits(DEFAULT_LIMITS), renewPerMinute: 3 });
    try {
      const device = await enrollDevice(limited, 'hammer-1');
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const response = await call(`${limited.url}/v1/renew`, { ca: limited.rootPem, json: { csr: 'garbage' }, cert: device.cert, key: device.key.privateKeyPem });
        statuses.push(response.status);
      }
      expect(statuses).toEqual([400, 400, 400, 429, 429]);
      // Another device behind the same address has its own budget.
      const other = await enrollDevice(limited, 'hammer-2');
      expect((await call(`${limited.url}/v1/renew`, { ca: limited.rootPem, json: { csr: 'garbage' }, cert: other.cert, key: other.key.privateKeyPem })).status).toBe(400);
    } finally {
      await limited.destroy();
    }
  });
});

/** The DER inside a PEM certificate. */
function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
}
