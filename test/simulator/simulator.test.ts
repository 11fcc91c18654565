/**
 * The simulator's own client driven against a real listening server: single-device boots
 * (enroll, reconnect, renew), the command line in single and fleet mode, and the demo.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient, ServerRefusedError } from '../../simulator/client.js';
import { bootDevice, dueForRenewal } from '../../simulator/device.js';
import { parseTokenCsv } from '../../simulator/fleet.js';
import { percentiles } from '../../simulator/load.js';
import { demo, simulate } from '../helpers/cli.js';
import { query } from '../helpers/database.js';
import { opensslVerify, tempDir } from '../helpers/openssl.js';
import { recordExpiredDevice, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

describe('bootDevice', () => {
  it('enrolls on first boot, reconnects on the next, renews once past 2/3 of its lifetime', async () => {
    const client = new ImprintClient(t.url, t.rootPem);
    const stateDir = join(tempDir(), 'sensor-001');
    const { token } = await t.mintToken();

    const first = await bootDevice(client, { stateDir, deviceId: 'sensor-001', token });
    expect(first).toMatchObject({ action: 'enrolled', device: { deviceId: 'sensor-001', status: 'active' } });
    expect(opensslVerify(readFileSync(join(stateDir, 'device.pem'), 'utf8'), t.rootPath, t.issuerPath)).toMatch(/OK/);

    const second = await bootDevice(client, { stateDir, deviceId: 'sensor-001', token: undefined });
    expect(second).toMatchObject({ action: 'reconnected', device: { serial: first.device.serial } });

    const keyBefore = readFileSync(join(stateDir, 'device.key'), 'utf8');
    const later = new Date(Date.now() + 61 * 86_400_000); // the device's clock, 61 of 90 days on
    const third = await bootDevice(client, { stateDir, deviceId: 'sensor-001', token: undefined, now: later });
    expect(third.action).toBe('renewed');
    expect(third.device.serial).not.toBe(first.device.serial);
    expect(readFileSync(join(stateDir, 'device.key'), 'utf8')).not.toBe(keyBefore);
    expect(dueForRenewal(readFileSync(join(stateDir, 'device.pem'), 'utf8'))).toBe(false);
  });

  it('a device that wakes up after its certificate expired renews inside the window, and is refused without one', async () => {
    const late = await startTestServer(undefined, undefined, { renewal: { overlapMs: 86_400_000, perDay: 10, afterExpiryMs: 30 * 86_400_000 } });
    try {
      for (const [server, id, expected] of [
        [late, 'shelved-1', 'renewed'],
        [t, 'shelved-2', 'client_cert_invalid'],
      ] as const) {
        const shelved = await recordExpiredDevice(server, id, 3);
        const stateDir = join(tempDir(), id);
        mkdirSync(stateDir);
        writeFileSync(join(stateDir, 'device.key'), shelved.key.privateKeyPem);
        writeFileSync(join(stateDir, 'device.pem'), shelved.cert);
        const boot = bootDevice(new ImprintClient(server.url, server.rootPem), { stateDir, deviceId: id, token: undefined });
        if (expected === 'renewed') {
          expect(await boot).toMatchObject({ action: 'renewed', device: { deviceId: id, status: 'active' } });
          expect(dueForRenewal(readFileSync(join(stateDir, 'device.pem'), 'utf8'))).toBe(false);
        } else {
          await expect(boot).rejects.toMatchObject({ status: 401, code: expected });
        }
      }
    } finally {
      await late.destroy();
    }
  });

  it('a reused token is refused with the server code', async () => {
    const client = new ImprintClient(t.url, t.rootPem);
    const { token } = await t.mintToken();
    await bootDevice(client, { stateDir: join(tempDir(), 'a'), deviceId: 'reuse-a', token });
    const refused = bootDevice(client, { stateDir: join(tempDir(), 'b'), deviceId: 'reuse-b', token });
    await expect(refused).rejects.toBeInstanceOf(ServerRefusedError);
    await expect(refused).rejects.toMatchObject({ status: 409, code: 'token_used' });
  });
});

describe('npm run simulate', () => {
  it('single mode enrolls, then reconnects from the same state directory', async () => {
    const { token } = await t.mintToken();
    const state = join(tempDir(), 'state');
    const args = ['--url', t.url, '--ca', t.rootPath, '--device-id', 'cli-sensor', '--state', state];
    const first = await simulate([...args, '--token', token]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^enrolled: the server says this is cli-sensor \(active/);
    const second = await simulate(args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^reconnected: the server says this is cli-sensor/);
  });

  it('single mode exits non-zero with the server error code for a bad token', async () => {
    const result = await simulate(['--url', t.url, '--ca', t.rootPath, '--device-id', 'x1', '--state', tempDir(), '--token', `imp_${'B'.repeat(43)}`]);
    expect(result.code).toBe(1);
    expect(result.stdout.trim()).toBe('token_invalid');
  });

  it('fleet mode enrolls and reconnects every device of a CSV batch and reports rates and percentiles', async () => {
    const { tokens } = await t.server.instance.tokens.mint({ count: 40, label: 'fleet-test' }, { actor: 'cli:test', role: 'admin' });
    const csv = join(tempDir(), 'batch.csv');
    writeFileSync(csv, ['id,token,deviceId,expiresAt', ...tokens.map((x) => `${x.id},${x.token},,${x.expiresAt}`)].join('\n'));

    const result = await simulate(['--url', t.url, '--ca', t.rootPath, '--fleet', '40', '--tokens', csv, '--concurrency', '8', '--id-prefix', 'fleet', '--json']);

    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ devices: 40, concurrency: 8, enroll: { ok: 40, failed: 0 }, reconnect: { ok: 40, failed: 0 } });
    expect(report.enroll.perSecond).toBeGreaterThan(0);
    expect(report.enroll.latencyMs.p99).toBeGreaterThanOrEqual(report.enroll.latencyMs.p50);
    expect(result.stderr).toMatch(/enroll: 40\/40/);
    const devices = query<{ n: number }>(t.dataDir, "SELECT count(*) AS n FROM devices WHERE id LIKE 'fleet-%'");
    expect(devices).toEqual([{ n: 40 }]);
  });
});

describe('fleet helpers', () => {
  it('parses the CSV that tokens create writes, bound ids included', () => {
    expect(parseTokenCsv('id,token,deviceId,expiresAt\nt1,imp_a,,2030\nt2,imp_b,cam-1,2030\n')).toEqual([
      { token: 'imp_a', deviceId: null },
      { token: 'imp_b', deviceId: 'cam-1' },
    ]);
  });

  it('computes nearest-rank percentiles', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentiles(samples)).toEqual({ p50: 50, p90: 90, p99: 99 });
  });
});

describe('npm run demo', () => {
  it('tells the whole story and exits 0', async () => {
    const result = await demo();
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/3\.3 demo-sensor-3 enrolled .* reconnected over mutual TLS/);
    expect(result.stdout).toMatch(/refused: 409 token_used/);
    expect(result.stdout).toMatch(/demo complete/);
  });
});
