/**
 * The simulator speaking each enrollment protocol against a real listening server: a
 * device enrolls (JSON, EST simpleenroll, SCEP PKCSReq), reconnects over mTLS with what it
 * got, and renews (JSON /v1/renew, EST simplereenroll, SCEP RenewalReq); the command line
 * takes --protocol in single and fleet mode.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient } from '../../simulator/client.js';
import { bootDevice } from '../../simulator/device.js';
import { PROTOCOLS } from '../../simulator/protocols.js';
import { simulate } from '../helpers/cli.js';
import { query } from '../helpers/database.js';
import { opensslVerify, tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

describe.each(PROTOCOLS)('--protocol %s', (protocol) => {
  it('enrolls, reconnects over mTLS, renews once past 2/3 of its lifetime', async () => {
    const client = new ImprintClient(t.url, t.rootPem);
    const deviceId = `proto-${protocol}-1`;
    const stateDir = join(tempDir(), deviceId);
    const { token } = await t.mintToken();

    const first = await bootDevice(client, { stateDir, deviceId, token, protocol });
    expect(first).toMatchObject({ action: 'enrolled', device: { deviceId, status: 'active' } });
    const pem = readFileSync(join(stateDir, 'device.pem'), 'utf8');
    expect(opensslVerify(pem, t.rootPath, t.issuerPath)).toMatch(/OK/);
    expect(new X509Certificate(pem).publicKey.asymmetricKeyType).toBe(protocol === 'scep' ? 'rsa' : 'ec');
    expect(query<{ enrolled_via: string }>(t.dataDir, `SELECT enrolled_via FROM devices WHERE id = '${deviceId}'`)).toEqual([{ enrolled_via: protocol }]);

    const second = await bootDevice(client, { stateDir, deviceId, token: undefined, protocol });
    expect(second).toMatchObject({ action: 'reconnected', device: { serial: first.device.serial } });

    const later = new Date(Date.now() + 61 * 86_400_000);
    const third = await bootDevice(client, { stateDir, deviceId, token: undefined, protocol, now: later });
    expect(third.action).toBe('renewed');
    expect(third.device.serial).not.toBe(first.device.serial);
    expect(opensslVerify(readFileSync(join(stateDir, 'device.pem'), 'utf8'), t.rootPath, t.issuerPath)).toMatch(/OK/);
  });

  it('a used token is refused with the server code (SCEP: the FAILURE CertRep failInfo)', async () => {
    const client = new ImprintClient(t.url, t.rootPem);
    const { token } = await t.mintToken();
    await bootDevice(client, { stateDir: join(tempDir(), 'a'), deviceId: `proto-${protocol}-reuse-a`, token, protocol });
    const refused = bootDevice(client, { stateDir: join(tempDir(), 'b'), deviceId: `proto-${protocol}-reuse-b`, token, protocol });
    const expected = { json: { status: 409, code: 'token_used' }, est: { status: 401, code: 'token_used' }, scep: { status: 200, code: 'badRequest' } }[protocol];
    await expect(refused).rejects.toMatchObject(expected);
  });

  it('single and fleet mode on the command line', async () => {
    const { token } = await t.mintToken();
    const state = join(tempDir(), 'state');
    const args = ['--url', t.url, '--ca', t.rootPath, '--device-id', `proto-cli-${protocol}`, '--state', state, '--protocol', protocol];
    const first = await simulate([...args, '--token', token]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^enrolled: the server says this is proto-cli-${protocol} \\(active`));

    const count = protocol === 'scep' ? 6 : 12;
    const { tokens } = await t.server.instance.tokens.mint({ count }, { actor: 'cli:test', role: 'admin' });
    const csv = join(tempDir(), 'batch.csv');
    writeFileSync(csv, ['id,token,deviceId,expiresAt', ...tokens.map((x) => `${x.id},${x.token},,${x.expiresAt}`)].join('\n'));
    const fleet = await simulate(['--url', t.url, '--ca', t.rootPath, '--fleet', String(count), '--tokens', csv, '--concurrency', '4', '--id-prefix', `fleet-${protocol}`, '--protocol', protocol, '--json']);
    expect(fleet.code, fleet.stderr).toBe(0);
    expect(JSON.parse(fleet.stdout)).toMatchObject({ protocol, devices: count, enroll: { ok: count, failed: 0 }, reconnect: { ok: count, failed: 0 } });
  });
});

it('--protocol takes only json, est and scep', async () => {
  const result = await simulate(['--url', t.url, '--ca', t.rootPath, '--device-id', 'x', '--state', tempDir(), '--protocol', 'cmp']);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/--protocol must be one of json, est, scep/);
});
