/**
 * The fleet commands run the same checks twice: on the data directory, and with --server
 * against a real listening server with an operator certificate. Same output, same exit codes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imprint } from '../helpers/cli.js';
import { tempDir } from '../helpers/openssl.js';
import { enrollDevice, issueOperator, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
const credentials: Record<'admin' | 'provisioner', string[]> = { admin: [], provisioner: [] };

beforeAll(async () => {
  t = await startTestServer();
  const dir = tempDir();
  for (const role of ['admin', 'provisioner'] as const) {
    const operator = await issueOperator(t, `${role}-op`, role);
    writeFileSync(join(dir, `${role}.pem`), operator.cert);
    writeFileSync(join(dir, `${role}.key`), operator.key);
    credentials[role] = ['--server', t.url, '--cert', join(dir, `${role}.pem`), '--key', join(dir, `${role}.key`), '--cacert', t.rootPath];
  }
});

afterAll(async () => {
  await t.destroy();
});

const MODES = [
  { mode: 'local', where: () => ['--data', t.dataDir] },
  { mode: 'remote', where: () => credentials.admin },
];

describe.each(MODES)('fleet commands ($mode)', ({ mode, where }) => {
  const cli = (...args: string[]) => imprint([...args, ...where()]);

  it('tokens: create as CSV, list by label, revoke one, refuse an unknown one', async () => {
    const label = `batch-${mode}`;
    const created = await cli('tokens', 'create', '--count', '3', '--label', label, '--ttl', '2d', '--format', 'csv');
    expect(created.code, created.stderr).toBe(0);
    const [header, ...rows] = created.stdout.trim().split('\n');
    expect(header).toBe('id,token,deviceId,expiresAt');
    expect(rows).toHaveLength(3);
    const ids = rows.map((row) => row.split(',')[0]!);

    const revoked = await cli('tokens', 'revoke', ids[0]!);
    expect(revoked).toMatchObject({ code: 0, stdout: `${ids[0]} revoked\n` });

    const listed = JSON.parse((await cli('tokens', 'list', '--label', label, '--status', 'unused', '--json')).stdout);
    expect(listed.items.map((each: { id: string }) => each.id).sort()).toEqual(ids.slice(1).sort());
    const table = await cli('tokens', 'list', '--label', label);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+LABEL\s+DEVICE\s+EXPIRES\s+USED BY$/);

    const unknown = await cli('tokens', 'revoke', 'tok_0000000000000000');
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^imprint: not_found: no token with id tok_0000000000000000\n$/);
  });

  it('devices: list, show, revoke; an unknown device is not_found', async () => {
    const device = await enrollDevice(t, `meter-${mode}`);
    expect(device.response.status).toBe(201);

    const list = JSON.parse((await cli('devices', 'list', '--q', `meter-${mode}`, '--json')).stdout);
    expect(list).toMatchObject({ items: [{ id: device.id, status: 'active', currentSerial: device.serial }], nextCursor: null });
    const shown = JSON.parse((await cli('devices', 'show', device.id, '--json')).stdout);
    expect(shown.certificates.map((c: { serial: string }) => c.serial)).toEqual([device.serial]);

    const revoked = await cli('devices', 'revoke', device.id, '--reason', 'keyCompromise');
    expect(revoked).toMatchObject({ code: 0, stdout: `${device.id} revoked (1 certificate(s) revoked now)\n` });
    const after = await cli('devices', 'show', device.id);
    expect(after.stdout).toMatch(new RegExp(`^${device.id}  revoked  enrolled \\S+  revoked \\S+ \\(keyCompromise\\)`));

    const missing = await cli('devices', 'show', 'no-such-device');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^imprint: not_found: no device no-such-device\n$/);
  });

  it('certs list by device and show one, with its PEM', async () => {
    const device = await enrollDevice(t, `gauge-${mode}`);
    const listed = await cli('certs', 'list', '--device', `gauge-${mode}`, '--json');
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).items.map((c: { serial: string }) => c.serial)).toEqual([device.serial]);
    const shown = await cli('certs', 'show', device.serial, '--json');
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ serial: device.serial, deviceId: `gauge-${mode}`, status: 'active', pem: device.cert.trim() + '\n' });
    const unknown = await cli('certs', 'show', 'abcdef');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^imprint: not_found: /);
  });

  it('certs revoke by serial', async () => {
    const device = await enrollDevice(t, `valve-${mode}`);
    const revoked = await cli('certs', 'revoke', device.serial, '--reason', 'superseded', '--json');
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ serial: device.serial, status: 'revoked', revocationReason: 'superseded' });
  });

  it('audit lists what was done, by whom', async () => {
    const audit = JSON.parse((await cli('audit', '--limit', '1000', '--json')).stdout);
    const revocations = audit.items.filter((e: { action: string; deviceId: string | null }) => e.action === 'devices.revoke' && e.deviceId === `meter-${mode}`);
    expect(revocations).toHaveLength(1);
    expect(revocations[0].actor).toMatch(mode === 'local' ? /^cli:/ : /^operator:admin-op$/);
  });
});

describe('a provisioner on a factory host', () => {
  it('mints a CSV batch of 500 over HTTPS', async () => {
    const result = await imprint(['tokens', 'create', ...credentials.provisioner, '--count', '500', '--label', 'line-3', '--format', 'csv']);
    expect(result.code, result.stderr).toBe(0);
    const [header, ...rows] = result.stdout.trim().split('\n');
    expect(header).toBe('id,token,deviceId,expiresAt');
    expect(rows).toHaveLength(500);
    expect(new Set(rows.map((row) => row.split(',')[1])).size).toBe(500);
    const listed = await t.server.instance.tokens.list({ label: 'line-3', limit: 1000 });
    expect(listed.items).toHaveLength(500);
    expect(listed.items[0]!.createdBy).toBe('operator:provisioner-op');
  });

  it('is refused the fleet: exit 1 with the server code', async () => {
    const result = await imprint(['devices', 'list', ...credentials.provisioner]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^imprint: forbidden: .+\n$/);
  });

  it('takes the server and credentials from the environment', async () => {
    const [, server, , cert, , key, , cacert] = credentials.provisioner;
    const result = await imprint(['tokens', 'create', '--count', '2'], { IMPRINT_SERVER: server!, IMPRINT_CERT: cert!, IMPRINT_KEY: key!, IMPRINT_CACERT: cacert! });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toHaveLength(2);
  });
});

describe('remote failures', () => {
  it.each([
    { name: 'no server there', args: () => ['--server', 'https://127.0.0.1:1', '--cert', credentials.admin[3]!, '--key', credentials.admin[5]!], message: /^imprint: cannot reach https:\/\/127\.0\.0\.1:1: ECONNREFUSED/ },
    { name: 'server not trusted', args: () => credentials.admin.slice(0, 6), message: /^imprint: cannot reach .*(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED|unable to)/ },
    { name: 'missing key file', args: () => [...credentials.admin.slice(0, 4), '--key', '/nonexistent.key'], message: /^imprint: cannot read operator key \/nonexistent\.key \(ENOENT\)/ },
  ])('$name: exit 1 with one line', async ({ args, message }) => {
    const result = await imprint(['devices', 'list', ...args()]);
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n')).toEqual([expect.stringMatching(message), '']);
  });

  it('--server without a certificate is a usage error', async () => {
    const result = await imprint(['devices', 'list', '--server', t.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^imprint: --server needs an operator certificate/);
  });
});
