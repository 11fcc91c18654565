/** `imprint init` and `imprint tokens ...` run as separate processes on a real data directory. */
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { imprint } from '../helpers/cli.js';
import { query } from '../helpers/database.js';
import { tempDir } from '../helpers/openssl.js';
import { loadMigrations } from '../../src/store/migrate.js';

const dataDir = join(tempDir(), 'data');

beforeAll(async () => {
  const init = await imprint(['init', '--data', dataDir, '--org', 'Acme', '--hostname', 'enroll.example.com']);
  expect(init.code, init.stderr).toBe(0);
});

describe('imprint init', () => {
  it('writes the CA, the server identity and the database, keys and database 0600', () => {
    for (const file of ['ca/root.key', 'ca/issuer.key', 'tls/server.key', 'imprint.db']) {
      expect(statSync(join(dataDir, file)).mode & 0o777, file).toBe(0o600);
    }
    for (const file of ['ca/root.pem', 'ca/issuer.pem', 'tls/server.pem', 'imprint.db']) {
      expect(statSync(join(dataDir, file)).isFile(), file).toBe(true);
    }
  });

  it('refuses to initialise twice, with one line on stderr', async () => {
    const again = await imprint(['init', '--data', dataDir]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/already initialised/);
  });
});

describe('imprint tokens create', () => {
  it('prints one token per line by default, and stores only hashes', async () => {
    const result = await imprint(['tokens', 'create', '--data', dataDir, '--count', '3']);
    expect(result.code, result.stderr).toBe(0);
    const tokens = result.stdout.trim().split('\n');
    expect(tokens).toHaveLength(3);
    for (const token of tokens) expect(token).toMatch(/^imp_[A-Za-z0-9_-]{43}$/);
    const stored = JSON.stringify(query(dataDir, 'SELECT * FROM tokens'));
    for (const token of tokens) expect(stored).not.toContain(token);
  });

  it('--format csv writes the factory batch header and a row per token', async () => {
    const result = await imprint(['tokens', 'create', '--data', dataDir, '--count', '5', '--ttl', '30d', '--label', 'line-3', '--format', 'csv']);
    expect(result.code, result.stderr).toBe(0);
    const [header, ...rows] = result.stdout.trim().split('\n');
    expect(header).toBe('id,token,deviceId,expiresAt');
    expect(rows).toHaveLength(5);
    const [id, token, deviceId, expiresAt] = rows[0]!.split(',');
    expect(id).toMatch(/^tok_[0-9a-f]{16}$/);
    expect(token).toMatch(/^imp_/);
    expect(deviceId).toBe('');
    const days = (new Date(expiresAt!).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
  });

  it('--format json binds tokens with --device-id and --device-ids-file', async () => {
    const file = join(tempDir(), 'ids.txt');
    writeFileSync(file, '# line 3\ncam-0003\n\ncam-0004\n');
    const result = await imprint([
      'tokens', 'create', '--data', dataDir, '--device-id', 'cam-0001', '--device-id', 'cam-0002', '--device-ids-file', file, '--format', 'json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const { tokens } = JSON.parse(result.stdout);
    expect(tokens.map((t: { deviceId: string }) => t.deviceId)).toEqual(['cam-0001', 'cam-0002', 'cam-0003', 'cam-0004']);
    expect(Object.keys(tokens[0]).sort()).toEqual(['deviceId', 'expiresAt', 'id', 'token']);
  });

  it.each([
    { name: 'count/zero', args: ['--count', '0'], message: /--count must be a whole number from 1 to 10000/, code: 2 },
    { name: 'count/too-many', args: ['--count', '10001'], message: /--count must be a whole number from 1 to 10000/, code: 2 },
    { name: 'ttl/garbage', args: ['--ttl', 'soon'], message: /--ttl: invalid duration/, code: 2 },
    { name: 'ttl/too-short', args: ['--ttl', '5s'], message: /--ttl must be between/, code: 2 },
    { name: 'device-id/invalid', args: ['--device-id', 'bad id'], message: /does not match/, code: 1 },
    { name: 'device-id/duplicate', args: ['--device-id', 'x1', '--device-id', 'x1'], message: /duplicates/, code: 1 },
    { name: 'format/unknown', args: ['--format', 'xml'], message: /--format must be one of/, code: 2 },
    { name: 'flag/unknown', args: ['--colour'], message: /^imprint: unknown flag --colour for tokens create/, code: 2 },
  ])('$name fails with exit $code, one line on stderr and nothing minted', async ({ args, message, code }) => {
    const before = query(dataDir, 'SELECT count(*) AS n FROM tokens');
    const result = await imprint(['tokens', 'create', '--data', dataDir, ...args]);
    expect(result.code).toBe(code);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
    expect(query(dataDir, 'SELECT count(*) AS n FROM tokens')).toEqual(before);
  });
});

describe('imprint tokens list / revoke', () => {
  it('lists by label and status, revokes one, and pages with a cursor', async () => {
    const created = await imprint(['tokens', 'create', '--data', dataDir, '--count', '3', '--label', 'batch-x', '--format', 'json']);
    const ids: string[] = JSON.parse(created.stdout).tokens.map((t: { id: string }) => t.id);

    const revoke = await imprint(['tokens', 'revoke', '--data', dataDir, ids[0]!]);
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(revoke.stdout.trim()).toBe(`${ids[0]} revoked`);

    const unused = JSON.parse((await imprint(['tokens', 'list', '--data', dataDir, '--label', 'batch-x', '--status', 'unused', '--json'])).stdout);
    expect(unused.items.map((t: { id: string }) => t.id)).toEqual(ids.slice(1));
    expect(JSON.stringify(unused)).not.toMatch(/imp_/);

    const page1 = JSON.parse((await imprint(['tokens', 'list', '--data', dataDir, '--label', 'batch-x', '--limit', '2', '--json'])).stdout);
    expect(page1.items).toHaveLength(2);
    const page2 = JSON.parse(
      (await imprint(['tokens', 'list', '--data', dataDir, '--label', 'batch-x', '--limit', '2', '--cursor', page1.nextCursor, '--json'])).stdout,
    );
    expect(page2).toMatchObject({ items: [{ id: ids[2] }], nextCursor: null });

    const table = await imprint(['tokens', 'list', '--data', dataDir, '--label', 'batch-x']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+LABEL/);
    expect(table.stdout).toMatch(new RegExp(`${ids[0]}\\s+revoked`));
  });

  it('revoking an unknown token fails with not_found', async () => {
    const result = await imprint(['tokens', 'revoke', '--data', dataDir, 'tok_nope']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not_found/);
  });
});

describe('imprint migrate and errors', () => {
  it('migrate on an up-to-date database is a no-op that succeeds', async () => {
    const result = await imprint(['migrate', '--data', dataDir]);
    expect(result.code, result.stderr).toBe(0);
    expect(query(dataDir, 'PRAGMA user_version')).toEqual([{ user_version: loadMigrations().length }]);
  });

  it('an unknown command exits 2', async () => {
    const result = await imprint(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown command/);
  });

  it('a command on an uninitialised data directory says how to initialise it', async () => {
    const result = await imprint(['tokens', 'list', '--data', join(tempDir(), 'empty')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not initialised: run imprint init/);
  });
});
