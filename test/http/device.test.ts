/**
 * Device routes over mutual TLS: who may reach /v1/device, renewal with a new key, and a
 * restart on the same data directory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { query } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { enrollDevice, signedButNotRecorded, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

let counter = 0;
/** A freshly enrolled device (ids mtls-1, mtls-2, ... unless named). */
async function enroll(id = `mtls-${++counter}`): Promise<EnrolledDevice> {
  const device = await enrollDevice(t, id);
  expect(device.response.status).toBe(201);
  return device;
}

const getDevice = (cert?: string, key?: string): Promise<Response> =>
  call(`${t.url}/v1/device`, { ca: t.rootPem, ...(cert ? { cert } : {}), ...(key ? { key } : {}) });

const renew = (device: { cert: string; key: DeviceKey }, csr: string): Promise<Response> =>
  call(`${t.url}/v1/renew`, { ca: t.rootPem, json: { csr }, cert: device.cert, key: device.key.privateKeyPem });

describe('GET /v1/device', () => {
  it('answers an enrolled device with who it is', async () => {
    const device = await enroll();
    const response = await getDevice(device.cert, device.key.privateKeyPem);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      deviceId: device.id,
      status: 'active',
      serial: device.serial,
      notAfter: expect.stringMatching(/Z$/),
      enrolledAt: expect.stringMatching(/Z$/),
    });
  });

  it('without a client certificate -> 401 client_cert_required', async () => {
    const response = await getDevice();
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('client_cert_required');
  });

  it('with a certificate from another CA -> 401 client_cert_invalid', async () => {
    const dir = tempDir();
    const keyPath = join(dir, 'k.pem');
    const cert = openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath,
      '-subj', '/CN=mtls-1', '-days', '1', '-addext', 'extendedKeyUsage=clientAuth',
    ]);
    const response = await getDevice(cert, readFileSync(keyPath, 'utf8'));
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('client_cert_invalid');
  });

  it('with an expired certificate from our own CA -> 401 client_cert_invalid', async () => {
    const { cert: pem, key } = await signedButNotRecorded(t, 'mtls-expired', -10 * 86_400_000, -86_400_000);
    const response = await getDevice(pem, key);
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'client_cert_invalid', message: expect.stringMatching(/expired/) });
  });

  it('with a certificate signed by our CA but never recorded -> 401 client_cert_invalid', async () => {
    const { cert: pem, key } = await signedButNotRecorded(t, 'mtls-ghost', -60_000, 86_400_000);
    const response = await getDevice(pem, key);
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('client_cert_invalid');
  });

  it('with a certificate superseded by a re-provisioning -> 401 client_cert_invalid', async () => {
    const device = await enroll();
    const { token } = await t.mintToken({ deviceId: device.id });
    const reprovision = await call(`${t.url}/v1/enroll`, {
      ca: t.rootPem,
      json: { csr: buildCsr(await generateDeviceKey(), device.id) },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(reprovision.status).toBe(201);
    const response = await getDevice(device.cert, device.key.privateKeyPem);
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'client_cert_invalid', message: expect.stringMatching(/superseded/) });
  });
});

describe('POST /v1/renew', () => {
  it('renews with a new key: same device id, new serial, and the new certificate works', async () => {
    const device = await enroll();
    const newKey = await generateDeviceKey();
    const response = await renew(device, buildCsr(newKey, device.id));
    expect(response.status).toBe(201);
    expect(response.body.deviceId).toBe(device.id);
    expect(response.body.serial).not.toBe(device.serial);
    const reconnect = await getDevice(response.body.certificate, newKey.privateKeyPem);
    expect(reconnect.body).toMatchObject({ deviceId: device.id, serial: response.body.serial });
    const rows = query<{ current_serial: string }>(t.dataDir, 'SELECT current_serial FROM devices WHERE id = ?', device.id);
    expect(rows).toEqual([{ current_serial: response.body.serial }]);
  });

  it('renews with the same key', async () => {
    const device = await enroll();
    const response = await renew(device, buildCsr(device.key, device.id));
    expect(response.status).toBe(201);
  });

  it.each([
    { name: 'renew/other-cn', status: 403, code: 'csr_subject_mismatch', csr: async () => buildCsr(await generateDeviceKey(), 'someone-else') },
    { name: 'renew/garbage-csr', status: 400, code: 'csr_malformed', csr: async () => 'garbage' },
  ])('$name -> $status $code', async ({ status, code, csr }) => {
    const device = await enroll();
    const response = await renew(device, await csr());
    expect(response.status).toBe(status);
    expect(response.body.error).toBe(code);
  });

  it('renew/key-of-another-device -> 409 key_reused', async () => {
    const [a, b] = [await enroll(), await enroll()];
    const response = await renew(a, buildCsr(b.key, a.id));
    expect(response.status).toBe(409);
    expect(response.body.error).toBe('key_reused');
  });

  it('renew/no-client-certificate -> 401 client_cert_required, whatever the body: it is not read', async () => {
    const bodies: { json?: unknown; body?: string; headers?: Record<string, string> }[] = [
      { json: { csr: 'x' } },
      { json: {} },
      { json: { csr: 1, extra: true } },
      { body: '{not json', headers: { 'content-type': 'application/json' } },
      { body: 'csr', headers: { 'content-type': 'text/plain' } },
    ];
    for (const body of bodies) {
      const response = await call(`${t.url}/v1/renew`, { ca: t.rootPem, ...body });
      expect(response.status, JSON.stringify(body)).toBe(401);
      expect(response.body.error).toBe('client_cert_required');
    }
  });
});

describe('restart on the same data directory', () => {
  it('keeps the CA, and enrolled devices still reconnect', async () => {
    const device = await enroll('survivor-1');
    const rootBefore = t.rootPem;
    const dataDir = t.dataDir;
    await t.stop();

    t = await startTestServer(dataDir);

    expect(t.rootPem).toBe(rootBefore);
    const response = await getDevice(device.cert, device.key.privateKeyPem);
    expect(response.status).toBe(200);
    expect(response.body.deviceId).toBe('survivor-1');
  });
});
