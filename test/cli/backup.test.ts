/**
 * `imprint backup` from another process while the server enrolls devices, then a restore
 * into a new data directory (as the README describes) that serves the same fleet.
 */
import { cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { imprint } from '../helpers/cli.js';
import { query } from '../helpers/database.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { enrollDevice, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
let restored: TestServer | undefined;
let first: EnrolledDevice;
const backupFile = join(tempDir(), 'imprint-backup.db');
let enrolledDuringBackup = 0;

beforeAll(async () => {
  t = await startTestServer();
  first = await enrollDevice(t, 'before-backup');
  expect(first.response.status).toBe(201);

  // Enrollments keep committing while the backup runs in another process (bounded: 40 devices).
  let backupDone = false;
  const load = (async () => {
    for (let i = 0; i < 40 && !backupDone; i++) {
      const device = await enrollDevice(t, `during-backup-${i}`);
      expect(device.response.status).toBe(201);
      enrolledDuringBackup++;
    }
  })();
  const backup = await imprint(['backup', '--data', t.dataDir, backupFile]);
  backupDone = true;
  await load;
  expect(backup.code, backup.stderr).toBe(0);
  expect(backup.stdout).toMatch(/^backup written to .*imprint-backup\.db \(\d+ bytes\)/);
});
afterAll(async () => {
  await restored?.destroy();
  await t.destroy();
});

describe('imprint backup', () => {
  it('writes a 0600 file that passes the integrity check, with every used token matched by its device and certificate', () => {
    expect(enrolledDuringBackup).toBeGreaterThan(0);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    // One self-contained file: no temporary copy, -wal or -shm left beside it.
    expect(readdirSync(dirname(backupFile))).toEqual([basename(backupFile)]);
    const dir = join(tempDir(), 'inspect');
    mkdirSync(dir);
    cpSync(backupFile, join(dir, 'imprint.db'));
    expect(query(dir, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    const orphans = query(dir, `SELECT t.id FROM tokens t LEFT JOIN certificates c ON c.serial = t.serial LEFT JOIN devices d ON d.id = c.device_id
      WHERE t.used_at IS NOT NULL AND (c.serial IS NULL OR d.id IS NULL)`);
    expect(orphans).toEqual([]);
    expect(query(dir, "SELECT id FROM devices WHERE id = 'before-backup'")).toHaveLength(1);
  });

  it('is recorded in the audit log', () => {
    expect(query(t.dataDir, "SELECT actor, outcome FROM audit_events WHERE action = 'backup'")).toEqual([{ actor: expect.stringMatching(/^cli:/), outcome: 'ok' }]);
  });

  it('refuses to overwrite an existing file', async () => {
    const again = await imprint(['backup', '--data', t.dataDir, backupFile]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('restores into a new data directory that serves the same fleet', async () => {
    const dataDir = join(tempDir(), 'restored');
    mkdirSync(dataDir);
    cpSync(join(t.dataDir, 'ca'), join(dataDir, 'ca'), { recursive: true });
    cpSync(join(t.dataDir, 'tls'), join(dataDir, 'tls'), { recursive: true });
    cpSync(backupFile, join(dataDir, 'imprint.db'));
    expect((await imprint(['audit', 'verify', '--data', dataDir])).code).toBe(0);

    restored = await startTestServer(dataDir);
    const me = await call(`${restored.url}/v1/device`, { ca: restored.rootPem, cert: first.cert, key: first.key.privateKeyPem });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ deviceId: 'before-backup', serial: first.serial });
    // The restored store still knows the id is taken, and still enrolls new devices.
    const key = await generateDeviceKey();
    const { token } = await restored.mintToken();
    const clash = await call(`${restored.url}/v1/enroll`, { ca: restored.rootPem, json: { csr: buildCsr(key, 'before-backup') }, headers: { authorization: `Bearer ${token}` } });
    expect(clash.body.error).toBe('device_exists');
    expect((await enrollDevice(restored, 'after-restore', token)).response.status).toBe(201);
  });
});
