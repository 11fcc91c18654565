/**
 * PostgreSQL goes away under a running instance: what needs the database is answered 503
 * with Retry-After, what can be served from memory (the CRL, kept OCSP answers) still is,
 * and once the database is back the same process serves again without a restart.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { spawnServer, type ServerProcess } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

let postgres: PostgresServer;
let server: ServerProcess;
let dataDir: string;
const work = tempDir();

const cli = (args: string[]) => imprint([...args, '--data', dataDir, '--database', postgres.url]);

async function mintTokens(count: number): Promise<string[]> {
  const minted = await cli(['tokens', 'create', '--count', String(count), '--format', 'json']);
  expect(minted.code, minted.stderr).toBe(0);
  return (JSON.parse(minted.stdout) as { tokens: { token: string }[] }).tokens.map((each) => each.token);
}

const enroll = async (token: string, id: string) =>
  call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: buildCsr(await generateDeviceKey(), id) }, headers: { authorization: `Bearer ${token}` } });

const ocsp = (request: Buffer) => call(`${server.url}/ocsp`, { ca: server.rootPem, body: request, headers: { 'content-type': 'application/ocsp-request' } });

beforeAll(async () => {
  postgres = await startPostgres();
  dataDir = join(tempDir(), 'data');
  const init = await imprint(['init', '--data', dataDir, '--database', postgres.url]);
  expect(init.code, init.stderr).toBe(0);
  server = await spawnServer(dataDir, ['--database', postgres.url, '--workers', '1', '--rate-limit', 'off']);
}, 60_000);

afterAll(async () => {
  await server?.killGroup('SIGKILL');
  await postgres?.stop();
});

it('while PostgreSQL is down: 503 with Retry-After for what needs it, the CRL and kept OCSP answers still served; back up, the same process serves again', async () => {
  const [first, duringOutage] = await mintTokens(2);
  const enrolled = await enroll(first!, 'before-outage');
  expect(enrolled.status).toBe(201);
  const certPath = join(work, 'device.pem');
  writeFileSync(certPath, enrolled.body.certificate);
  const requestPath = join(work, 'request.der');
  openssl(['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), '-cert', certPath, '-no_nonce', '-reqout', requestPath]);
  const request = readFileSync(requestPath);
  const noncePath = join(work, 'nonce-request.der');
  openssl(['ocsp', '-issuer', join(dataDir, 'ca/issuer.pem'), '-cert', certPath, '-reqout', noncePath]);
  const crlBefore = await call(`${server.url}/crl`, { ca: server.rootPem });
  const ocspBefore = await ocsp(request);
  expect([crlBefore.status, ocspBefore.status]).toEqual([200, 200]);

  await postgres.kill();

  const refused = await enroll(duringOutage!, 'during-outage');
  expect(refused.status, JSON.stringify(refused.body)).toBe(503);
  expect(refused.body.error).toBe('service_unavailable');
  expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
  const ready = await call(`${server.url}/readyz`, { ca: server.rootPem });
  expect(ready.status).toBe(503);

  const crlDuring = await call(`${server.url}/crl`, { ca: server.rootPem });
  expect(crlDuring.status).toBe(200);
  expect(crlDuring.raw.equals(crlBefore.raw)).toBe(true);
  const ocspDuring = await ocsp(request);
  expect(ocspDuring.status).toBe(200);
  expect(ocspDuring.raw.equals(ocspBefore.raw)).toBe(true);
  // A nonce answer would be signed now: another instance may have revoked meanwhile, so none is.
  const nonceDuring = await ocsp(readFileSync(noncePath));
  expect(nonceDuring.status).toBe(200);
  expect(nonceDuring.raw.toString('hex')).toBe('30030a0103'); // OCSPResponse { tryLater(3) }

  await postgres.restart();
  let recovered = await enroll(duringOutage!, 'during-outage');
  for (let i = 0; i < 100 && recovered.status === 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    recovered = await enroll(duringOutage!, 'during-outage');
  }
  expect(recovered.status, JSON.stringify(recovered.body)).toBe(201);
  expect(server.child.exitCode).toBeNull();
  expect((await call(`${server.url}/readyz`, { ca: server.rootPem })).status).toBe(200);

  // The refused attempt recorded nothing: the token went to the enrollment that succeeded.
  const listed = await cli(['certs', 'list', '--device', 'during-outage', '--json']);
  expect(JSON.parse(listed.stdout).items).toHaveLength(1);
  const verified = await cli(['audit', 'verify']);
  expect(verified.code, verified.stderr).toBe(0);
}, 120_000);
