/**
 * The operator's CLI against a running server, each command a separate process writing the
 * same data directory: operator identities, fleet listing and revocation, the audit log and
 * its hash chain.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imprint } from '../helpers/cli.js';
import { curl } from '../helpers/curl.js';
import { execute, query, snapshot } from '../helpers/database.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { enrollDevice, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
let data: string[];
let sensors: EnrolledDevice[];

const cli = async (...args: string[]) => {
  const result = await imprint([...args, ...data]);
  return { ...result, json: () => JSON.parse(result.stdout) };
};

/** Asserts the contract for a failed command: exit 1 (2 for a usage mistake), nothing on stdout, one line on stderr. */
function failed(result: { code: number | null; stdout: string; stderr: string }, message: RegExp, code = 1) {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(message);
}

beforeAll(async () => {
  t = await startTestServer();
  data = ['--data', t.dataDir];
  sensors = [await enrollDevice(t, 'sensor-001'), await enrollDevice(t, 'sensor-002'), await enrollDevice(t, 'valve-001')];
});
afterAll(async () => {
  await t.destroy();
});

describe('imprint operators', () => {
  const out = tempDir();

  it('issue writes NAME.pem (cert + issuer), NAME.key and NAME.p12 (0600), and the identity works over mTLS', async () => {
    const result = await cli('operators', 'issue', 'alice', '--role', 'admin', '--out', out);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^issued admin alice \(serial [0-9a-f]{32}, valid until /);
    const passphrase = /\(shown once\): (\S+)$/m.exec(result.stderr)?.[1];
    expect(passphrase).toBeDefined();

    expect(readFileSync(join(out, 'alice.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    for (const file of ['alice.key', 'alice.p12']) expect(statSync(join(out, file)).mode & 0o777, file).toBe(0o600);
    const p12 = openssl(['pkcs12', '-in', join(out, 'alice.p12'), '-passin', `pass:${passphrase}`, '-nokeys', '-clcerts']);
    expect(p12).toMatch(/subject=CN\s?=\s?alice/);
    expect(openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', join(out, 'alice.pem')])).toMatch(/URI:spiffe:\/\/[^/]+\/operator\/alice/);

    const listed = await curl(['--cacert', t.rootPath, '--cert', join(out, 'alice.pem'), '--key', join(out, 'alice.key'), `${t.url}/v1/admin/devices?q=sensor`]);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body).items.map((d: { id: string }) => d.id)).toEqual(['sensor-001', 'sensor-002']);
  });

  it('a provisioner from the CLI mints over HTTPS but may not list the fleet', async () => {
    const result = await imprint(['operators', 'issue', 'line-3', '--role', 'provisioner', '--out', out, ...data], { IMPRINT_P12_PASSPHRASE: 'factory' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/shown once/);
    const identity = ['--cacert', t.rootPath, '--cert', join(out, 'line-3.pem'), '--key', join(out, 'line-3.key')];
    const minted = await curl([...identity, '-H', 'Content-Type: application/json', '-d', '{"count":3,"label":"line-3"}', `${t.url}/v1/admin/tokens`]);
    expect(minted.status).toBe(201);
    expect(JSON.parse(minted.body).tokens).toHaveLength(3);
    expect((await curl([...identity, `${t.url}/v1/admin/devices`])).status).toBe(403);
  });

  it.each([
    { name: 'existing files', args: ['alice', '--role', 'admin'], message: /alice\.pem already exists/, code: 1 },
    { name: 'path in the name', args: ['../evil', '--role', 'admin'], message: /bad_request: operator name must match/, code: 1 },
    { name: 'unknown role', args: ['carol', '--role', 'root'], message: /--role must be one of admin, provisioner/, code: 2 },
  ])('issue refuses $name and records nothing', async ({ args, message, code }) => {
    const before = query(t.dataDir, 'SELECT count(*) AS n FROM operators');
    failed(await cli('operators', 'issue', ...args, '--out', out), message, code);
    expect(query(t.dataDir, 'SELECT count(*) AS n FROM operators')).toEqual(before);
  });

  it('list shows both; revoke shuts the identity out of the running server', async () => {
    const listed = (await cli('operators', 'list', '--json')).json();
    expect(listed.items.map((o: { name: string; role: string; status: string }) => [o.name, o.role, o.status])).toEqual([
      ['alice', 'admin', 'active'],
      ['line-3', 'provisioner', 'active'],
    ]);
    const revoked = await cli('operators', 'revoke', 'line-3');
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout.trim()).toBe('line-3 revoked (1 certificate(s) and 3 unused token(s) revoked)');
    const identity = { ca: t.rootPem, cert: readFileSync(join(out, 'line-3.pem'), 'utf8'), key: readFileSync(join(out, 'line-3.key'), 'utf8') };
    await expect.poll(async () => (await call(`${t.url}/v1/admin/tokens`, identity)).body.error, { timeout: 1000, interval: 50 }).toBe('client_cert_invalid');
    failed(await cli('operators', 'revoke', 'nobody'), /not_found/);
  });
});

describe('imprint devices and certs', () => {
  it('devices list pages and filters; the table has a header', async () => {
    const page = (await cli('devices', 'list', '--limit', '2', '--json')).json();
    expect(page.items).toHaveLength(2);
    const rest = (await cli('devices', 'list', '--limit', '2', '--cursor', page.nextCursor, '--json')).json();
    expect([...page.items, ...rest.items].map((d: { id: string }) => d.id).sort()).toEqual(['sensor-001', 'sensor-002', 'valve-001']);
    expect((await cli('devices', 'list', '--q', 'valve', '--json')).json().items.map((d: { id: string }) => d.id)).toEqual(['valve-001']);
    const table = await cli('devices', 'list');
    expect(table.stdout.split('\n')[0]).toMatch(/^DEVICE\s+STATUS\s+ENROLLED\s+SERIAL/);
    expect(table.stdout).toMatch(new RegExp(`sensor-001\\s+active\\s+\\S+\\s+${sensors[0]!.serial}`));
  });

  it('devices show gives the certificate history; certs show gives the PEM', async () => {
    const shown = (await cli('devices', 'show', 'sensor-001', '--json')).json();
    expect(shown).toMatchObject({ id: 'sensor-001', status: 'active', certificates: [{ serial: sensors[0]!.serial, status: 'active' }] });
    // As `openssl x509 -serial` prints it: upper case, and with a leading zero nibble kept or not.
    const serial = sensors[0]!.serial.toUpperCase();
    for (const typed of [serial, serial.replace(/^0/, '')]) {
      const cert = await cli('certs', 'show', typed);
      expect(cert.stdout, cert.stderr).toContain(sensors[0]!.cert.trim());
    }
  });

  it('certs revoke revokes one certificate and leaves the device active', async () => {
    const result = await cli('certs', 'revoke', sensors[1]!.serial, '--reason', 'superseded');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(`${sensors[1]!.serial} revoked (superseded)`);
    expect((await cli('devices', 'show', 'sensor-002', '--json')).json().status).toBe('active');
    const listed = (await cli('certs', 'list', '--device', 'sensor-002', '--status', 'revoked', '--json')).json();
    expect(listed.items.map((c: { serial: string }) => c.serial)).toEqual([sensors[1]!.serial]);
  });

  it('devices revoke revokes the device and its certificates, and the others keep working', async () => {
    const result = await cli('devices', 'revoke', 'sensor-001', '--reason', 'keyCompromise');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('sensor-001 revoked (1 certificate(s) revoked now)');
    // Again: it reports what this revocation did, not the device's history.
    expect((await cli('devices', 'revoke', 'sensor-001')).stdout.trim()).toBe('sensor-001 revoked (0 certificate(s) revoked now)');
    const as = (device: EnrolledDevice) => call(`${t.url}/v1/device`, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem });
    await expect.poll(async () => (await as(sensors[0]!)).body.error, { timeout: 1000, interval: 50 }).toBe('device_revoked');
    expect((await as(sensors[2]!)).body).toMatchObject({ deviceId: 'valve-001', status: 'active' });
    expect((await cli('devices', 'list', '--status', 'revoked', '--json')).json().items.map((d: { id: string }) => d.id)).toEqual(['sensor-001']);
  });

  it.each([
    { name: 'unknown device', args: ['devices', 'show', 'nope'], message: /not_found/, code: 1 },
    { name: 'bad reason', args: ['devices', 'revoke', 'valve-001', '--reason', 'boredom'], message: /--reason must be one of/, code: 2 },
    { name: 'bad status', args: ['devices', 'list', '--status', 'lost'], message: /--status must be one of/, code: 2 },
    { name: 'bad cursor', args: ['devices', 'list', '--cursor', 'garbage'], message: /bad_request: .*cursor/, code: 1 },
    { name: 'bad serial', args: ['certs', 'revoke', 'xyz'], message: /bad_request: .*serial/, code: 1 },
    { name: 'two device ids', args: ['devices', 'revoke', 'a', 'b'], message: /unexpected argument "b"/, code: 2 },
  ])('$name fails with one line and changes nothing', async ({ args, message, code }) => {
    const before = snapshot(t.dataDir).state;
    failed(await cli(...args), message, code);
    expect(snapshot(t.dataDir).state).toBe(before);
  });
});

describe('imprint audit', () => {
  it('shows who did what: the CLI user, the operator over HTTPS, devices enrolling', async () => {
    const events = (await cli('audit', '--limit', '1000', '--json')).json().items as { actor: string; action: string; outcome: string; source: string | null }[];
    expect(events.some((e) => e.actor.startsWith('cli:') && e.action === 'devices.revoke')).toBe(true);
    expect(events.some((e) => e.actor === 'operator:line-3' && e.action === 'tokens.create' && e.source === '127.0.0.1')).toBe(true);
    expect(events.filter((e) => e.action === 'enroll' && e.outcome === 'ok')).toHaveLength(3);
    const table = await cli('audit');
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+TIME\s+ACTOR\s+ACTION\s+OUTCOME/);
  });

  describe('verify', () => {
    let head: string;
    let rows: { id: number; outcome: string }[];

    beforeAll(async () => {
      await t.stop(); // nothing else writes the log while rows are tampered with
      const intact = await cli('audit', 'verify');
      expect(intact.code, intact.stderr).toBe(0);
      head = /head ([0-9a-f]{64})$/m.exec(intact.stdout)![1]!;
      rows = query(t.dataDir, 'SELECT id, outcome FROM audit_events ORDER BY id');
      expect(intact.stdout).toMatch(new RegExp(`^audit log intact: ${rows.length} events verified`));
    });

    it('detects a row edited directly in SQLite, and passes again once it is put back', async () => {
      const victim = rows[3]!;
      execute(t.dataDir, "UPDATE audit_events SET outcome = 'ok_but_edited' WHERE id = ?", victim.id);
      failed(await cli('audit', 'verify'), new RegExp(`audit log broken at event ${victim.id}: its content does not match its hash`));
      execute(t.dataDir, 'UPDATE audit_events SET outcome = ? WHERE id = ?', victim.outcome, victim.id);
      expect((await cli('audit', 'verify', '--head', head)).code).toBe(0);
    });

    it('detects a row deleted from the middle', async () => {
      const [victim, next] = [rows[5]!, rows[6]!];
      const saved = query<Record<string, unknown>>(t.dataDir, 'SELECT * FROM audit_events WHERE id = ?', victim.id)[0]!;
      execute(t.dataDir, 'DELETE FROM audit_events WHERE id = ?', victim.id);
      failed(await cli('audit', 'verify'), new RegExp(`audit log broken at event ${next.id}: does not follow the event before it`));
      const columns = Object.keys(saved);
      execute(t.dataDir, `INSERT INTO audit_events (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, ...Object.values(saved));
    });

    it('detects events cut off the end when given the head recorded earlier', async () => {
      execute(t.dataDir, 'DELETE FROM audit_events WHERE id = ?', rows[rows.length - 1]!.id);
      // The chain itself is still whole: only the recorded head can tell.
      expect((await cli('audit', 'verify')).code).toBe(0);
      failed(await cli('audit', 'verify', '--head', head), /the recorded head [0-9a-f]{64} is no longer in the log/);
    });
  });
});
