/**
 * Two imprint instances, each its own process with its own copy of the CA files, serving
 * one fleet from one PostgreSQL database: what one instance does, the other honours.
 */
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { keptAlive as keptAliveOn } from '../helpers/kept-alive.js';
import { tempDir } from '../helpers/openssl.js';
import { freshDatabaseUrl } from '../helpers/postgres.js';

let database: string;
let a: ServerProcess;
let b: ServerProcess;
let dataA: string;
let rootPem: string;

/** The CLI on instance A's data directory and the shared database. */
const cli = (args: string[]) => imprint([...args, '--data', dataA, '--database', database]);

async function mintTokens(count: number): Promise<string[]> {
  const minted = await cli(['tokens', 'create', '--count', String(count), '--format', 'json']);
  expect(minted.code, minted.stderr).toBe(0);
  return (JSON.parse(minted.stdout) as { tokens: { token: string }[] }).tokens.map((each) => each.token);
}

async function enroll(server: ServerProcess, token: string, csr: string) {
  return call(`${server.url}/v1/enroll`, { ca: rootPem, json: { csr }, headers: { authorization: `Bearer ${token}` } });
}

interface Device {
  readonly id: string;
  readonly key: DeviceKey;
  readonly cert: string;
  readonly serial: string;
}

async function enrolledDevice(server: ServerProcess, id: string): Promise<Device> {
  const [token] = await mintTokens(1);
  const key = await generateDeviceKey();
  const response = await enroll(server, token!, buildCsr(key, id));
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { id, key, cert: response.body.certificate, serial: response.body.serial };
}

/** A device holding one kept-alive mTLS connection open to `server`. */
const keptAlive = (server: ServerProcess, device: Device) => keptAliveOn(server.url, { ca: rootPem, cert: device.cert, key: device.key.privateKeyPem });

beforeAll(async () => {
  database = await freshDatabaseUrl();
  dataA = join(tempDir(), 'a');
  const init = await imprint(['init', '--data', dataA, '--database', database]);
  expect(init.code, init.stderr).toBe(0);
  // The second instance gets the CA files as an operator would copy them; the fleet is in the database.
  const dataB = join(tempDir(), 'b');
  mkdirSync(dataB, { mode: 0o700 });
  for (const dir of ['ca', 'tls']) cpSync(join(dataA, dir), join(dataB, dir), { recursive: true });
  const serve = (dir: string) => spawnServer(dir, ['--database', database, '--workers', '1', '--rate-limit', 'off']);
  [a, b] = await Promise.all([serve(dataA), serve(dataB)]);
  rootPem = a.rootPem;
}, 60_000);

afterAll(async () => {
  await Promise.all([a, b].filter(Boolean).map((server) => server.killGroup('SIGKILL')));
});

describe('two instances on one PostgreSQL', () => {
  it('a second init on the shared database is refused: it would start a second CA', async () => {
    const again = await imprint(['init', '--data', join(tempDir(), 'c'), '--database', database]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already initialised: copy ca\/ and tls\//);
  });

  it('a token is one-time across both: 30 concurrent enrollments with different CSRs, exactly one certificate', async () => {
    const [token] = await mintTokens(1);
    const keys = await Promise.all(Array.from({ length: 30 }, () => generateDeviceKey()));
    const responses = await Promise.all(keys.map((key, i) => enroll(i % 2 ? a : b, token!, buildCsr(key, 'race-device'))));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    for (const response of responses.filter((each) => each.status !== 201)) {
      expect(response.status).toBe(409);
      expect(response.body.error).toBe('token_used');
    }
    const listed = await cli(['certs', 'list', '--device', 'race-device', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).items).toHaveLength(1);
  });

  it('an idempotent retry gets the same certificate from the other instance', async () => {
    const [token] = await mintTokens(1);
    const csr = buildCsr(await generateDeviceKey(), 'retry-device');
    const first = await enroll(a, token!, csr);
    expect(first.status).toBe(201);
    const retried = await enroll(b, token!, csr);
    expect(retried.status).toBe(200);
    expect(retried.body.serial).toBe(first.body.serial);
    expect(retried.body.certificate).toBe(first.body.certificate);
  });

  it('a revocation through the CLI closes an open connection on each instance within 1 s, and both serve the same CRL', async () => {
    const device = await enrolledDevice(a, 'revoked-device');
    const bystander = await enrolledDevice(b, 'bystander-device');
    const onA = keptAlive(a, device);
    const onB = keptAlive(b, device);
    const bystanderOnB = keptAlive(b, bystander);
    expect([await onA.get(), await onB.get(), await bystanderOnB.get()].map((each) => each.status)).toEqual([200, 200, 200]);

    const revoked = await cli(['devices', 'revoke', device.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    // The CLI's process exits after its commit: from then on, one second.
    expect(await Promise.all([onA.closedWithin(1000), onB.closedWithin(1000)])).toEqual([true, true]);
    expect(await bystanderOnB.closedWithin(300)).toBe(false);
    expect((await bystanderOnB.get()).status).toBe(200);
    const refused = await call(`${b.url}/v1/device`, { ca: rootPem, cert: device.cert, key: device.key.privateKeyPem });
    expect(refused.status).toBe(403);

    const [crlA, crlB] = await Promise.all([call(`${a.url}/crl`, { ca: rootPem }), call(`${b.url}/crl`, { ca: rootPem })]);
    expect(crlA.status).toBe(200);
    expect(crlB.raw.equals(crlA.raw)).toBe(true);
    for (const agent of [onA, onB, bystanderOnB]) agent.agent.destroy();
  });

  it('the audit log stays one hash chain under concurrent writes from both instances', async () => {
    const tokens = await mintTokens(40);
    const keys = await Promise.all(tokens.map(() => generateDeviceKey()));
    const responses = await Promise.all(tokens.map((token, i) => enroll(i % 2 ? a : b, token, buildCsr(keys[i]!, `chain-${i}`))));
    expect(responses.map((response) => response.status)).toEqual(tokens.map(() => 201));
    const verified = await cli(['audit', 'verify', '--json']);
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
  });
});
