/**
 * `imprint serve --workers 2`: two processes share the port and the database; a revocation
 * reaches both within a second, rate limits count for the whole server, and SIGTERM stops
 * both cleanly.
 */
import { Agent, request } from 'node:https';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient } from '../../simulator/client.js';
import { readBody } from '../../simulator/read-body.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { curl } from '../helpers/curl.js';
import { portHolders, serverPids } from '../helpers/process-tree.js';
import { freePort, spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { workersBindThePort } from '../../src/serve.js';

const dataDir = join(tempDir(), 'data');
const FAILED_TOKENS_PER_MINUTE = 6;
let server: ServerProcess;

beforeAll(async () => {
  server = await spawnServer(dataDir, ['--workers', '2', '--status-port', String(await freePort())], {
    IMPRINT_FAILED_TOKENS_PER_MINUTE: String(FAILED_TOKENS_PER_MINUTE),
  });
});
afterAll(async () => {
  if (server.child.exitCode === null) await server.killGroup('SIGKILL');
});

async function enrolled(id: string) {
  const token = (await imprint(['tokens', 'create', '--data', dataDir])).stdout.trim();
  const key = await generateDeviceKey();
  const response = await new ImprintClient(server.url, server.rootPem).enroll(token, buildCsr(key, id));
  return { certificatePem: response.certificate, keyPem: key.privateKeyPem };
}

/** Opens a kept-alive connection as `identity`; resolves with its socket after one request. */
function connection(identity: { certificatePem: string; keyPem: string }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: server.rootPem, cert: identity.certificatePem, key: identity.keyPem });
  return new Promise<{ agent: Agent; socket: Socket }>((resolve, reject) => {
    const req = request(`${server.url}/v1/device`, { agent }, (res) => {
      const socket = res.socket;
      readBody(res).then(() => resolve({ agent, socket }), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('imprint serve --workers 2', () => {
  it('runs two workers, and a revocation from the CLI closes the device\'s connections on both within a second', async () => {
    const victim = await enrolled('workers-victim');
    const bystander = await enrolled('workers-bystander');
    // Twenty land on both workers however they are spread: in turn by the primary, or by the
    // kernel's hash where the workers bind the port themselves (all on one once in ~500,000).
    // ss shows which process holds the server side of each.
    const open = await Promise.all(Array.from({ length: 20 }, () => connection(victim)));
    const pids = portHolders(server.port, 'established');
    expect(pids.size).toBe(2);
    expect(pids.has(server.child.pid!)).toBe(false);
    const closed = open.map(({ socket }) => new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now()))));

    const revoked = await imprint(['devices', 'revoke', 'workers-victim', '--data', dataDir]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const returned = Date.now();
    const times = await Promise.race([Promise.all(closed), new Promise<number[]>((resolve) => setTimeout(() => resolve([]), 3000))]);
    expect(times).toHaveLength(20);
    for (const at of times) expect(at - returned).toBeLessThan(1000);

    const other = await connection(bystander);
    expect(other.socket.destroyed).toBe(false);
    for (const { agent } of [...open, other]) agent.destroy();
  });

  it('counts a source\'s refused tokens across both workers: the budget is the server\'s, not each worker\'s', async () => {
    const statuses: number[] = [];
    // A new connection per request: they are spread over both workers.
    for (let i = 0; i < 3 * FAILED_TOKENS_PER_MINUTE; i++) {
      const response = await call(`${server.url}/v1/enroll`, {
        ca: server.rootPem,
        localAddress: '127.0.0.9',
        json: { csr: 'x' },
        headers: { authorization: `Bearer imp_${'B'.repeat(43)}` },
      });
      statuses.push(response.status);
    }
    expect(statuses.filter((status) => status === 401)).toHaveLength(FAILED_TOKENS_PER_MINUTE);
    expect(statuses.slice(FAILED_TOKENS_PER_MINUTE).every((status) => status === 429)).toBe(true);
    // Another source is not affected.
    const other = await call(`${server.url}/v1/enroll`, { ca: server.rootPem, localAddress: '127.0.0.10', json: { csr: 'x' }, headers: { authorization: `Bearer imp_${'B'.repeat(43)}` } });
    expect(other.status).toBe(401);
  });

  it('every worker answers on the plain-HTTP status listener, all with the one CRL published in the store', async () => {
    expect(server.statusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The primary hands the status listener's connections to the workers in turn: four reach both.
    const crls: Buffer[] = [];
    for (let i = 0; i < 4; i++) {
      const file = join(tempDir(), 'crl.der');
      expect((await curl(['-o', file, `${server.statusUrl}/crl`])).status).toBe(200);
      crls.push(readFileSync(file));
    }
    for (const crl of crls) expect(crl.equals(crls[0]!)).toBe(true);
    const file = join(tempDir(), 'crl.der');
    writeFileSync(file, crls[0]!);
    expect(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text'])).toMatch(/Revoked Certificates:/);
  });

  it('keeps the store in the workers: the primary, which initialised nothing, opens the database once, to checkpoint it, and loads none of the store', () => {
    const { primary, workers } = serverPids(server.child.pid!);
    const opened = (pid: number) =>
      readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return ''; // closed while we looked
        }
      });
    const database = join(dataDir, 'imprint.db');
    expect(workers).toHaveLength(2);
    expect(opened(primary!).filter((path) => path === database)).toHaveLength(1);
    // Its SQLite is better-sqlite3's own, the store's code is not there (test/cli/lazy-loading.test.ts).
    expect(readFileSync(`/proc/${primary!}/maps`, 'utf8')).toContain('better_sqlite3.node');
    for (const worker of workers) expect(opened(worker)).toContain(database);
  });

  it('runs its workers with a 4 MB young generation (V8 semi-spaces), which would otherwise grow to 16 MB each, and 2 V8 helper threads instead of 4', () => {
    const { workers } = serverPids(server.child.pid!);
    const flags = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(workers).toHaveLength(2);
    for (const worker of workers) expect(flags(worker)).toEqual(expect.arrayContaining(['--max-semi-space-size=4', '--v8-pool-size=2']));
  });

  it('where Node can (22.12+ on Linux), each worker binds the HTTPS port itself; elsewhere the primary does and hands connections over', () => {
    const { primary, workers } = serverPids(server.child.pid!);
    // --port 0: the first worker's ephemeral port, which the second bound too.
    const https = portHolders(server.port, 'listening');
    if (workersBindThePort()) expect([...https].sort(), 'the workers hold it').toEqual([...workers].sort());
    else expect([...https], 'the primary holds it').toEqual([primary]);
    // The status listener is always the primary's.
    expect([...portHolders(Number(new URL(server.statusUrl!).port), 'listening')]).toEqual([primary]);
  });

  it('refuses --port 0 with --status-port 0 across workers, which would hand both listeners one port', async () => {
    const refused = await imprint(['serve', '--data', dataDir, '--workers', '2', '--port', '0', '--status-port', '0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--port 0 and --status-port 0 cannot be used together/);
  });

  it('SIGTERM stops both workers and the primary, exit 0', async () => {
    expect(await server.stop()).toBe(0);
    await server.killGroup('SIGKILL').catch(() => undefined); // nothing left: resolves at once
  });
});
