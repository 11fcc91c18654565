/**
 * `imprint migrate-store`: a SQLite fleet built through the real CLI and a real server moves
 * into PostgreSQL while that server still runs; a server started on the same data directory
 * with --database then serves the same fleet, its audit chain and its CRL numbering.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { buildCsr, generateDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { openDatabase } from '../../src/store/database.js';
import { loadMigrations, migrate } from '../../src/store/migrate.js';
import { imprint, type Run } from '../helpers/cli.js';
import { query as sqlite } from '../helpers/database.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { freshDatabaseUrl, query as postgres } from '../helpers/postgres.js';

/** Every table migrate-store copies, with the key that orders its rows. */
const TABLES = {
  settings: 'key',
  operators: 'name',
  devices: 'id',
  tokens: 'id',
  certificates: 'serial',
  server_certificates: 'serial',
  published_crls: 'scope',
  audit_events: 'id',
  revocation_state: 'id',
} as const;

interface Device {
  readonly id: string;
  readonly key: DeviceKey;
  readonly cert: string;
  readonly serial: string;
}

let dataDir: string;
let database: string;
let sqliteServer: ServerProcess | undefined;
let postgresServer: ServerProcess;
let rootPem: string;
let tokens: { id: string; token: string }[];
let devices: Record<'kept' | 'renewed' | 'revoked' | 'certRevoked', Device>;
/** The renewed device's certificate after its renewal. */
let renewedCert: { cert: string; key: DeviceKey; serial: string };
let lastSqliteCrlNumber: number;
let moved: Run;

const cli = (args: string[]): Promise<Run> => imprint([...args, '--data', dataDir]);
const dbFile = (): string => join(dataDir, 'imprint.db');

async function must(args: string[]): Promise<Run> {
  const run = await cli(args);
  expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run;
}

async function enroll(server: ServerProcess, token: string, id: string): Promise<Device> {
  const key = await generateDeviceKey();
  const response = await call(`${server.url}/v1/enroll`, { ca: rootPem, json: { csr: buildCsr(key, id) }, headers: { authorization: `Bearer ${token}` } });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { id, key, cert: response.body.certificate, serial: response.body.serial };
}

function crlNumber(der: Buffer): number {
  const file = join(tempDir(), 'crl.der');
  writeFileSync(file, der);
  return parseInt(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber']).split('=')[1]!, 16);
}

/**
 * A row as both stores read alike: binary as hex, numbers as text (pg reads BIGINT as
 * text), PostgreSQL's booleans as SQLite's 0/1, without `pos` (PostgreSQL's listing position).
 */
function comparable(row: Record<string, unknown>): Record<string, unknown> {
  const value = (cell: unknown) =>
    Buffer.isBuffer(cell) ? cell.toString('hex') : typeof cell === 'boolean' ? String(Number(cell)) : typeof cell === 'number' ? String(cell) : cell;
  return Object.fromEntries(Object.entries(row).filter(([column]) => column !== 'pos').map(([column, cell]) => [column, value(cell)]));
}

/** Row counts of every table and the revocation counters on the target: what a refused move must leave alone. */
async function targetState(url: string): Promise<unknown> {
  const counts = await Promise.all(Object.keys(TABLES).map((table) => postgres(url, `SELECT count(*)::int AS n FROM ${table}`)));
  return { counts: counts.map(([row]) => row!.n), state: await postgres(url, 'SELECT seq, crl_number FROM revocation_state') };
}

beforeAll(async () => {
  dataDir = join(tempDir(), 'data');
  await must(['init']);
  sqliteServer = await spawnServer(dataDir, ['--workers', '1', '--rate-limit', 'off']);
  rootPem = sqliteServer.rootPem;
  tokens = JSON.parse((await must(['tokens', 'create', '--count', '5', '--format', 'json'])).stdout).tokens;

  devices = {
    kept: await enroll(sqliteServer, tokens[0]!.token, 'kept-device'),
    renewed: await enroll(sqliteServer, tokens[1]!.token, 'renewed-device'),
    revoked: await enroll(sqliteServer, tokens[2]!.token, 'revoked-device'),
    certRevoked: await enroll(sqliteServer, tokens[3]!.token, 'cert-revoked-device'),
  };
  const newKey = await generateDeviceKey();
  const renewal = await call(`${sqliteServer.url}/v1/renew`, {
    ca: rootPem,
    json: { csr: buildCsr(newKey, devices.renewed.id) },
    cert: devices.renewed.cert,
    key: devices.renewed.key.privateKeyPem,
  });
  expect(renewal.status, JSON.stringify(renewal.body)).toBe(201);
  renewedCert = { cert: renewal.body.certificate, key: newKey, serial: renewal.body.serial };

  await must(['operators', 'issue', 'alice', '--role', 'admin', '--out', join(tempDir(), 'operators')]);
  await must(['devices', 'revoke', devices.revoked.id]);
  // The CRL served here is published in the store; the certificate revoked after it is in none yet.
  const crl = await call(`${sqliteServer.url}/crl`, { ca: rootPem });
  expect(crl.status).toBe(200);
  lastSqliteCrlNumber = crlNumber(crl.raw);
  await must(['certs', 'revoke', devices.certRevoked.serial]);
  await must(['backup', join(tempDir(), 'before-move.db')]);

  // Moved while the SQLite server still runs: the copy reads one snapshot of a live file.
  database = await freshDatabaseUrl();
  moved = await imprint(['migrate-store', '--from', dbFile(), '--to', database, '--json']);
  await sqliteServer.stop();
  sqliteServer = undefined;
}, 120_000);

afterAll(async () => {
  await sqliteServer?.killGroup('SIGKILL');
  await postgresServer?.killGroup('SIGKILL');
});

describe('imprint migrate-store', () => {
  it('copies every row of every table as stored, and says what it verified', async () => {
    expect(moved.code, moved.stderr).toBe(0);
    const summary = JSON.parse(moved.stdout);
    const sourceHead = sqlite<{ hash: string }>(dataDir, 'SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1')[0]!.hash;
    for (const [table, key] of Object.entries(TABLES)) {
      // The cursor key is each store's own.
      const where = table === 'settings' ? ` WHERE key <> 'cursor_key'` : '';
      const source = sqlite<Record<string, unknown>>(dataDir, `SELECT * FROM ${table}${where} ORDER BY ${key}`).map(comparable);
      const target = (await postgres(database, `SELECT * FROM ${table}${where} ORDER BY ${key}`)).map(comparable);
      expect(target, table).toEqual(source);
      expect(source.length, table).toBeGreaterThan(0);
      if (table !== 'revocation_state') expect(summary.tables[table], table).toBe(source.length);
    }
    expect(summary).toMatchObject({ from: dbFile(), audit: { verified: summary.tables.audit_events, head: sourceHead } });
    const [sourceState] = sqlite<{ seq: number; crl_number: number }>(dataDir, 'SELECT seq, crl_number FROM revocation_state');
    expect(summary).toMatchObject({ revocationSeq: sourceState!.seq, crlNumber: sourceState!.crl_number });
    const cursorKeys = [sqlite<{ value: string }>(dataDir, `SELECT value FROM settings WHERE key = 'cursor_key'`), await postgres(database, `SELECT value FROM settings WHERE key = 'cursor_key'`)];
    expect(cursorKeys[1]).toHaveLength(1);
    expect(cursorKeys[1]).not.toEqual(cursorKeys[0]);
  });

  it('prints a readable summary without the URL password', async () => {
    const url = new URL(database);
    url.password = 'not-printed';
    const refused = await imprint(['migrate-store', '--from', dbFile(), '--to', url.href]);
    expect(refused.stderr).not.toContain('not-printed');
    const fresh = await freshDatabaseUrl();
    const text = await imprint(['migrate-store', '--from', dbFile(), '--to', fresh]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^copied .*imprint\.db to postgres:\/\//);
    expect(text.stdout).toMatch(/^devices\s+4$/m);
    expect(text.stdout).toMatch(/^audit log intact on the target: \d+ events verified, head [0-9a-f]{64}$/m);
  });

  it('leaves an audit chain that imprint audit verify passes on the target, with the source head', async () => {
    const source = await cli(['audit', 'verify', '--json']);
    const target = await cli(['audit', 'verify', '--json', '--database', database]);
    expect(target.code, target.stderr).toBe(0);
    expect(JSON.parse(target.stdout)).toEqual({ ...JSON.parse(source.stdout), ok: true });
  });

  describe('a server on the same data directory with --database', () => {
    beforeAll(async () => {
      postgresServer = await spawnServer(dataDir, ['--database', database, '--workers', '1', '--rate-limit', 'off']);
    });

    it('serves the fleet from PostgreSQL: devices reconnect, revoked ones are refused', async () => {
      const get = (cert: string, key: DeviceKey) => call(`${postgresServer.url}/v1/device`, { ca: rootPem, cert, key: key.privateKeyPem });
      const kept = await get(devices.kept.cert, devices.kept.key);
      expect(kept.status, JSON.stringify(kept.body)).toBe(200);
      expect(kept.body).toMatchObject({ deviceId: devices.kept.id, serial: devices.kept.serial, status: 'active' });
      const renewed = await get(renewedCert.cert, renewedCert.key);
      expect(renewed.body).toMatchObject({ deviceId: devices.renewed.id, serial: renewedCert.serial });
      const revokedDevice = await get(devices.revoked.cert, devices.revoked.key);
      expect([revokedDevice.status, revokedDevice.body.error]).toEqual([403, 'device_revoked']);
      const revokedCertificate = await get(devices.certRevoked.cert, devices.certRevoked.key);
      expect([revokedCertificate.status, revokedCertificate.body.error]).toEqual([401, 'client_cert_invalid']);
      expect(revokedCertificate.body.message).toMatch(/revoked/);
    });

    it('goes on with the CRL numbering: the next CRL lists both revocations under a greater number', async () => {
      const crl = await call(`${postgresServer.url}/crl`, { ca: rootPem });
      expect(crl.status).toBe(200);
      expect(crlNumber(crl.raw)).toBeGreaterThan(lastSqliteCrlNumber);
      const file = join(tempDir(), 'after.der');
      writeFileSync(file, crl.raw);
      const listed = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']).toLowerCase();
      for (const serial of [devices.revoked.serial, devices.certRevoked.serial]) expect(listed).toContain(serial.replace(/^0+/, ''));
    });

    it('still refuses a token used before the move', async () => {
      const key = await generateDeviceKey();
      const again = await call(`${postgresServer.url}/v1/enroll`, {
        ca: rootPem,
        json: { csr: buildCsr(key, 'another-device') },
        headers: { authorization: `Bearer ${tokens[0]!.token}` },
      });
      expect(again.status).toBe(409);
      expect(again.body.error).toBe('token_used');
      // An unused one still enrolls, with an audit id after the copied ones.
      await enroll(postgresServer, tokens[4]!.token, 'after-move-device');
      expect((await cli(['audit', 'verify', '--database', database])).code).toBe(0);
    });

    it('refuses a target that holds a fleet, naming what it holds, and changes nothing', async () => {
      const before = await targetState(database);
      const again = await imprint(['migrate-store', '--from', dbFile(), '--to', database]);
      expect(again.code).toBe(1);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);
      expect(again.stderr).toMatch(/already holds a fleet \(settings has \d+ rows, operators has 1 rows, devices has 5 rows, .*\)/);
      expect(await targetState(database)).toEqual(before);
    });
  });

  describe('refuses a source it cannot copy, before touching the target', () => {
    const source = (name: string) => join(tempDir(), name);
    it.each([
      ['from/missing', () => source('missing.db'), /missing\.db: no such file/],
      ['from/not-sqlite', () => join(dataDir, 'ca/root.pem'), /root\.pem is not an imprint database \(not a SQLite file\)/],
      [
        'from/other-sqlite',
        () => {
          const path = source('other.db');
          const db = new Database(path);
          db.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)');
          db.close();
          return path;
        },
        /other\.db is not an imprint database/,
      ],
      [
        'from/older-schema',
        () => {
          const dir = tempDir();
          const db = openDatabase(join(dir, 'imprint.db'));
          migrate(db, loadMigrations().slice(0, 10));
          db.close();
          return join(dir, 'imprint.db');
        },
        new RegExp(`has schema version 10, migrate-store copies version ${loadMigrations().length}: run imprint migrate --data .* first`),
      ],
      [
        // PostgreSQL nests /* */ comments and SQLite does not: a column name that is harmless
        // SQL to one and a statement to the other, as a crafted file would carry.
        'from/crafted-column-name',
        () => {
          const dir = tempDir();
          const db = openDatabase(join(dir, 'imprint.db'));
          migrate(db);
          db.exec(`CREATE TABLE settings_new (key TEXT PRIMARY KEY, value TEXT NOT NULL, "/* /* */ key || '*/ value) SELECT current_user, $$x$$ -- '" TEXT)`);
          db.exec('INSERT INTO settings_new (key, value) SELECT key, value FROM settings; DROP TABLE settings; ALTER TABLE settings_new RENAME TO settings');
          db.close();
          return join(dir, 'imprint.db');
        },
        /the source's settings table does not have the columns of an imprint database/,
      ],
    ])('%s', async (_name, path, message) => {
      const target = await freshDatabaseUrl();
      const refused = await imprint(['migrate-store', '--from', path(), '--to', target]);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toMatch(message);
      expect(await postgres(target, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)).toEqual([]);
    });
  });

  it('says in one line that PostgreSQL cannot be reached, without the password', async () => {
    const refused = await imprint(['migrate-store', '--from', dbFile(), '--to', 'postgres://imprint:s3cret@127.0.0.1:1/imprint']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/cannot connect to PostgreSQL at postgres:\/\/imprint:\*+@127\.0\.0\.1:1\/imprint: .*ECONNREFUSED/);
    expect(refused.stderr).not.toContain('s3cret');
  });

  it.each([
    ['usage/no-to', ['--from', 'x.db'], /needs --from FILE\.db and --to URL/],
    ['usage/not-postgres', ['--from', 'x.db', '--to', 'mysql://h/db'], /--to: expected a postgres:\/\//],
    ['usage/database-flag', ['--from', 'x.db', '--database', 'postgres://h/db'], /names its target with --to, not --database/],
  ])('%s', async (_name, args, message) => {
    const refused = await imprint(['migrate-store', ...args]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(message);
  });
});
