/**
 * OCSP answers agree with the store in every process at once (DESIGN "Revocation"): once a
 * revocation has been answered, over the API by one worker or by the CLI in a process of
 * its own, the next OCSP answer from every worker says revoked, with a nonce (signed from
 * kept statuses) and without (a kept answer). Each worker keeps the revocation sequence it
 * read until the store's next commit (src/store/sqlite/until-commit.ts), so this is what
 * shows that the keeping never lags a commit.
 */
import { Agent, request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImprintClient } from '../../simulator/client.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { readBody } from '../../simulator/read-body.js';
import { freePort, spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { portHolders } from '../helpers/process-tree.js';

const work = tempDir();
const dataDir = join(work, 'data');
/** Kept-alive connections to the status listener: the primary hands them to both workers in turn. */
const CONNECTIONS = 6;
let server: ServerProcess;
let admin: { cert: string; key: string };
let agents: Agent[];

beforeAll(async () => {
  server = await spawnServer(dataDir, ['--workers', '2', '--status-port', String(await freePort())]);
  const issued = await imprint(['operators', 'issue', 'ocsp-admin', '--role', 'admin', '--out', join(work, 'ops'), '--data', dataDir], { IMPRINT_P12_PASSPHRASE: 'test' });
  expect(issued.code, issued.stderr).toBe(0);
  admin = { cert: readFileSync(join(work, 'ops/ocsp-admin.pem'), 'utf8'), key: readFileSync(join(work, 'ops/ocsp-admin.key'), 'utf8') };
  agents = Array.from({ length: CONNECTIONS }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
});
afterAll(async () => {
  for (const agent of agents ?? []) agent.destroy();
  if (server.child.exitCode === null) await server.killGroup('SIGKILL');
});

/** An enrolled device's certificate file and the two requests about it: with a nonce and without. */
async function device(id: string) {
  const token = (await imprint(['tokens', 'create', '--data', dataDir])).stdout.trim();
  const enrolled = await new ImprintClient(server.url, server.rootPem).enroll(token, buildCsr(await generateDeviceKey(), id));
  const certPath = join(work, `${id}.pem`);
  writeFileSync(certPath, enrolled.certificate);
  const requestFile = (nonce: boolean) => {
    const file = join(work, `${id}-${nonce ? 'nonce' : 'plain'}.der`);
    openssl(['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), '-cert', certPath, ...(nonce ? [] : ['-no_nonce']), '-reqout', file]);
    return file;
  };
  return { id, requests: [requestFile(true), requestFile(false)] };
}

/** The certificate status openssl reads from the answer to `requestFile` on one kept-alive connection. */
async function statusOn(agent: Agent, requestFile: string): Promise<string> {
  const body = readFileSync(requestFile);
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const req = request(`${server.statusUrl}/ocsp`, { method: 'POST', agent, headers: { 'content-type': 'application/ocsp-request' } }, (res) => {
      readBody(res).then(resolve, reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  const file = `${requestFile}.answer`;
  writeFileSync(file, answer);
  const text = openssl(['ocsp', '-reqin', requestFile, '-respin', file, '-CAfile', join(dataDir, 'ca/root.pem'), '-resp_text']);
  return /Cert Status: (\w+)/.exec(text)?.[1] ?? text;
}

/** Every connection's answer to every request, in order. */
async function everyAnswer(requests: readonly string[]): Promise<string[]> {
  const statuses: string[] = [];
  for (const agent of agents) for (const file of requests) statuses.push(await statusOn(agent, file));
  return statuses;
}

/** Revokes a device over the API (one worker answers) or with the CLI (a process of its own). */
async function revoke(way: 'api' | 'cli', id: string): Promise<void> {
  if (way === 'api') {
    const revoked = await call(`${server.url}/v1/admin/devices/${id}/revoke`, { ca: server.rootPem, json: { reason: 'keyCompromise' }, ...admin });
    expect(revoked.status).toBe(200);
    return;
  }
  const revoked = await imprint(['devices', 'revoke', id, '--reason', 'keyCompromise', '--data', dataDir]);
  expect(revoked.code, revoked.stderr).toBe(0);
}

describe('OCSP on two workers, right after a revocation', () => {
  it.each(['api', 'cli'] as const)('revoked through the %s: the next answer from every worker says revoked', async (way) => {
    const { id, requests } = await device(`ocsp-follow-${way}`);
    // Every connection asks first: each worker keeps the answer without a nonce and the status.
    expect(await everyAnswer(requests)).toEqual(Array(CONNECTIONS * 2).fill('good'));
    // The processes holding the server side of the status listener's connections.
    const pids = portHolders(Number(new URL(server.statusUrl!).port), 'established');
    expect(pids.size).toBe(2);
    expect(pids.has(server.child.pid!)).toBe(false);

    await revoke(way, id);
    // At once: no wait for any poll.
    expect(await everyAnswer(requests)).toEqual(Array(CONNECTIONS * 2).fill('revoked'));
  });
});
