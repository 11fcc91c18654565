/**
 * The operator API: who may do what, fleet listing and search, revocation by device,
 * by certificate and by token batch, and re-provisioning a revoked device on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Response } from '../helpers/https.js';
import { enrollDevice, issueOperator, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
let admin: { cert: string; key: string };
let provisioner: { cert: string; key: string };
let retired: { cert: string; key: string };
let device: EnrolledDevice;

const enroll = (id: string, token?: string) => enrollDevice(t, id, token);

const as = (who: { cert: string; key: string } | undefined, method: string, path: string, json?: unknown): Promise<Response> =>
  call(`${t.url}${path}`, { ca: t.rootPem, method, ...(json === undefined ? {} : { json }), ...(who ?? {}) });

beforeAll(async () => {
  t = await startTestServer();
  admin = await issueOperator(t, 'alice', 'admin');
  provisioner = await issueOperator(t, 'line-3', 'provisioner');
  retired = await issueOperator(t, 'bob', 'admin');
  await t.server.instance.signing().operators.revoke('bob', { actor: 'cli:test', role: 'admin' });
  device = await enroll('admin-test-device');
});
afterAll(async () => {
  await t.destroy();
});

describe('access control', () => {
  const deviceIdentity = () => ({ cert: device.cert, key: device.key.privateKeyPem });
  it.each([
    { name: 'no-certificate', who: () => undefined, method: 'GET', path: '/v1/admin/devices', status: 401, code: 'client_cert_required' },
    // Authentication comes before the body and query are read: no schema talk for strangers.
    { name: 'no-certificate/bad-body', who: () => undefined, method: 'POST', path: '/v1/admin/devices/x/revoke', json: { reason: 'boredom' }, status: 401, code: 'client_cert_required' },
    { name: 'no-certificate/bad-query', who: () => undefined, method: 'GET', path: '/v1/admin/devices?sort=id', status: 401, code: 'client_cert_required' },
    { name: 'provisioner/bad-body', who: () => provisioner, method: 'POST', path: '/v1/admin/tokens/revoke', json: { nope: 1 }, status: 403, code: 'forbidden' },
    { name: 'device-certificate', who: deviceIdentity, method: 'GET', path: '/v1/admin/devices', status: 403, code: 'forbidden' },
    { name: 'device-certificate/mint', who: deviceIdentity, method: 'POST', path: '/v1/admin/tokens', json: {}, status: 403, code: 'forbidden' },
    { name: 'revoked-operator', who: () => retired, method: 'GET', path: '/v1/admin/tokens', status: 401, code: 'client_cert_invalid' },
    { name: 'provisioner/list-devices', who: () => provisioner, method: 'GET', path: '/v1/admin/devices', status: 403, code: 'forbidden' },
    { name: 'provisioner/revoke-device', who: () => provisioner, method: 'POST', path: '/v1/admin/devices/admin-test-device/revoke', json: {}, status: 403, code: 'forbidden' },
    { name: 'provisioner/revoke-token', who: () => provisioner, method: 'POST', path: '/v1/admin/tokens/tok_x/revoke', status: 403, code: 'forbidden' },
    { name: 'provisioner/audit', who: () => provisioner, method: 'GET', path: '/v1/admin/audit', status: 403, code: 'forbidden' },
    { name: 'admin/unknown-device', who: () => admin, method: 'GET', path: '/v1/admin/devices/nope', status: 404, code: 'not_found' },
    { name: 'admin/revoke-unknown-device', who: () => admin, method: 'POST', path: '/v1/admin/devices/nope/revoke', json: {}, status: 404, code: 'not_found' },
    { name: 'admin/revoke-unknown-serial', who: () => admin, method: 'POST', path: '/v1/admin/certificates/abcdef/revoke', json: {}, status: 404, code: 'not_found' },
    { name: 'admin/bad-serial', who: () => admin, method: 'POST', path: '/v1/admin/certificates/xyz/revoke', json: {}, status: 400, code: 'bad_request' },
    { name: 'admin/bad-reason', who: () => admin, method: 'POST', path: '/v1/admin/devices/admin-test-device/revoke', json: { reason: 'boredom' }, status: 400, code: 'bad_request' },
    { name: 'admin/bad-cursor', who: () => admin, method: 'GET', path: '/v1/admin/devices?cursor=garbage', status: 400, code: 'bad_request' },
    { name: 'admin/bad-limit', who: () => admin, method: 'GET', path: '/v1/admin/devices?limit=0', status: 400, code: 'bad_request' },
    { name: 'admin/bad-status', who: () => admin, method: 'GET', path: '/v1/admin/tokens?status=lost', status: 400, code: 'bad_request' },
    { name: 'admin/unknown-query', who: () => admin, method: 'GET', path: '/v1/admin/devices?sort=id', status: 400, code: 'bad_request' },
    { name: 'admin/mint-too-many', who: () => admin, method: 'POST', path: '/v1/admin/tokens', json: { count: 10001 }, status: 400, code: 'bad_request' },
    { name: 'admin/bad-since', who: () => admin, method: 'GET', path: '/v1/admin/audit?since=yesterday', status: 400, code: 'bad_request' },
  ])('$name -> $status $code', async ({ who, method, path, json, status, code }) => {
    const response = await as(who(), method, path, json);
    expect(response.status).toBe(status);
    expect(response.body).toEqual({ error: code, message: expect.any(String) });
  });

  it('the device is still active after every refused revocation', async () => {
    expect((await as(admin, 'GET', '/v1/admin/devices/admin-test-device')).body.status).toBe('active');
  });

  it.each([
    { name: 'Sec-Fetch-Site: cross-site', id: 'csrf-1', headers: { 'sec-fetch-site': 'cross-site' } },
    { name: 'Sec-Fetch-Site: same-site', id: 'csrf-2', headers: { 'sec-fetch-site': 'same-site' } },
    { name: 'a foreign Origin', id: 'csrf-3', headers: { origin: 'https://evil.example' } },
    { name: 'Origin null', id: 'csrf-4', headers: { origin: 'null' } },
  ])('a browser request marked cross-site ($name) is refused before it acts, even with an admin certificate', async ({ id, headers }) => {
    await enroll(id);
    const response = await call(`${t.url}/v1/admin/devices/${id}/revoke`, { ca: t.rootPem, cert: admin.cert, key: admin.key, method: 'POST', headers });
    expect(response.status).toBe(403);
    expect(response.body.error).toBe('forbidden');
    expect((await as(admin, 'GET', `/v1/admin/devices/${id}`)).body.status).toBe('active');
  });

  it('the same request from this origin (or from a client that is no browser) goes through', async () => {
    await enroll('csrf-same-origin');
    const host = new URL(t.url).host;
    const response = await call(`${t.url}/v1/admin/devices/csrf-same-origin/revoke`, {
      ca: t.rootPem,
      cert: admin.cert,
      key: admin.key,
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', origin: `https://${host}` },
    });
    expect(response.status).toBe(200);
  });

  it('a revocation without a body is a revocation without a reason', async () => {
    await enroll('no-body-device');
    const response = await as(admin, 'POST', '/v1/admin/devices/no-body-device/revoke');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id: 'no-body-device', status: 'revoked', revocationReason: 'unspecified' });
  });
});

describe('tokens over the API', () => {
  it('a provisioner mints a batch and lists it; tokens enroll devices', async () => {
    const minted = await as(provisioner, 'POST', '/v1/admin/tokens', { count: 3, label: 'line-3-api', ttlSeconds: 3600 });
    expect(minted.status).toBe(201);
    expect(minted.body.tokens).toHaveLength(3);
    const listed = await as(provisioner, 'GET', '/v1/admin/tokens?label=line-3-api&status=unused');
    expect(listed.body.items.map((x: { id: string }) => x.id)).toEqual(minted.body.tokens.map((x: { id: string }) => x.id));
    expect(JSON.stringify(listed.body)).not.toContain('imp_');
    expect((await enroll('api-token-device', minted.body.tokens[0].token)).response.status).toBe(201);
  });

  it('an admin revokes a whole lost batch by label, and its tokens stop working', async () => {
    const minted = await as(admin, 'POST', '/v1/admin/tokens', { count: 4, label: 'lost-batch' });
    const revoked = await as(admin, 'POST', '/v1/admin/tokens/revoke', { label: 'lost-batch' });
    expect(revoked.body).toEqual({ label: 'lost-batch', revoked: 4 });
    const refused = await enroll('from-lost-batch', minted.body.tokens[2].token);
    expect(refused.response.status).toBe(401);
    expect(refused.response.body.error).toBe('token_revoked');
  });

  it('a factory line binds a full batch of 10,000 device ids in one request', async () => {
    const deviceIds = Array.from({ length: 10_000 }, (_, i) => `line-4-${String(i).padStart(5, '0')}-${'x'.repeat(50)}`);
    const minted = await as(provisioner, 'POST', '/v1/admin/tokens', { deviceIds, label: 'line-4' });
    expect(minted.status).toBe(201);
    expect(minted.body.tokens).toHaveLength(10_000);
    expect(minted.body.tokens[9_999].deviceId).toBe(deviceIds[9_999]);
  });

  it('an admin revokes one token', async () => {
    const { id } = await t.mintToken();
    const response = await as(admin, 'POST', `/v1/admin/tokens/${id}/revoke`);
    expect(response.body).toMatchObject({ id, status: 'revoked' });
  });
});

describe('fleet', () => {
  it('lists with search and cursor pagination, every device exactly once', async () => {
    for (let i = 0; i < 5; i++) await enroll(`pager-${i}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Response = await as(admin, 'GET', `/v1/admin/devices?q=pager-&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((d: { id: string }) => d.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['pager-0', 'pager-1', 'pager-2', 'pager-3', 'pager-4']);
  });

  it('shows a device with its certificate history', async () => {
    const response = await as(admin, 'GET', `/v1/admin/devices/${device.id}`);
    expect(response.body).toMatchObject({ id: device.id, status: 'active', certificates: [{ serial: device.serial, status: 'active' }] });
  });

  it('revoking one certificate leaves the device active but refuses that certificate', async () => {
    const victim = await enroll('one-cert-revoked');
    const response = await as(admin, 'POST', `/v1/admin/certificates/${victim.serial.toUpperCase()}/revoke`, { reason: 'superseded' });
    expect(response.body).toMatchObject({ serial: victim.serial, status: 'revoked', revocationReason: 'superseded' });
    const device = await as(admin, 'GET', '/v1/admin/devices/one-cert-revoked');
    expect(device.body.status).toBe('active');
    const reconnect = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: victim.cert, key: victim.key.privateKeyPem });
    expect(reconnect.status).toBe(401);
    expect(reconnect.body.error).toBe('client_cert_invalid');
  });

  it('a revoked device cannot come back with an unbound token, but an admin may re-provision it with a bound one', async () => {
    const victim = await enroll('lost-and-found');
    const revoke = await as(admin, 'POST', '/v1/admin/devices/lost-and-found/revoke', { reason: 'keyCompromise' });
    expect(revoke.body).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise', certificates: [{ status: 'revoked' }] });

    const unbound = await enroll('lost-and-found');
    expect(unbound.response.status).toBe(403);
    expect(unbound.response.body.error).toBe('device_revoked');

    const bound = await t.mintToken({ deviceId: 'lost-and-found' });
    const again = await enroll('lost-and-found', bound.token);
    expect(again.response.status).toBe(201);
    const reconnect = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: again.cert, key: again.key.privateKeyPem });
    expect(reconnect.body).toMatchObject({ deviceId: 'lost-and-found', status: 'active' });
    const old = await call(`${t.url}/v1/device`, { ca: t.rootPem, cert: victim.cert, key: victim.key.privateKeyPem });
    expect(old.status).toBe(401);
  });

  it('the audit log shows who did it, from where, with what outcome', async () => {
    const response = await as(admin, 'GET', '/v1/admin/audit?limit=1000');
    const revocation = response.body.items.find((e: { action: string; deviceId: string }) => e.action === 'devices.revoke' && e.deviceId === 'lost-and-found');
    expect(revocation).toMatchObject({ actor: 'operator:alice', source: '127.0.0.1', outcome: 'ok', detail: { reason: 'keyCompromise' } });
    const mint = response.body.items.find((e: { action: string; actor: string }) => e.action === 'tokens.create' && e.actor === 'operator:line-3');
    expect(mint).toMatchObject({ detail: { count: 3, label: 'line-3-api' } });
  });

  it('the audit log pages with an authenticated cursor; an event id is not one', async () => {
    const all = (await as(admin, 'GET', '/v1/admin/audit?limit=1000')).body.items as { id: number }[];
    const paged: number[] = [];
    let cursor: string | null = null;
    do {
      const page: Response = await as(admin, 'GET', `/v1/admin/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      paged.push(...page.body.items.map((e: { id: number }) => e.id));
      cursor = page.body.nextCursor;
    } while (cursor && paged.length < all.length + 2);
    expect(paged.slice(0, all.length)).toEqual(all.map((e) => e.id));
    const forged = await as(admin, 'GET', `/v1/admin/audit?cursor=${all[1]!.id}`);
    expect(forged.status).toBe(400);
    expect(forged.body.error).toBe('bad_request');
  });
});
