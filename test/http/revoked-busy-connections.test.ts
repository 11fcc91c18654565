/**
 * A revoked certificate's open connection is closed within the contract's second even
 * when its latest answer is not finished: the client sets that pace (a CRL over 1 MB read
 * slowly, a request body trickled in), so it gets a moment to read why, not the
 * connection's lifetime.
 */
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BUSY_CLOSE_GRACE_MS } from '../../src/http/client-connections.js';
import { execute } from '../helpers/database.js';
import { call } from '../helpers/https.js';
import { enrollDevice, issueOperator, startTestServer, type TestServer } from '../helpers/server.js';

/** Revoked rows for a CRL (~15 MB) larger than loopback's socket buffers can take while the client reads nothing. */
const REVOKED = 400_000;
let t: TestServer;
let admin: { cert: string; key: string };

beforeAll(async () => {
  t = await startTestServer();
  admin = await issueOperator(t, 'busy-admin', 'admin');
  execute(t.dataDir, 'UPDATE revocation_state SET seq = seq + 1');
  const der = process.env.IMPRINT_TEST_STORE === 'postgres' ? "'\\x00'::bytea" : "X'00'";
  execute(
    t.dataDir,
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${REVOKED})
     INSERT INTO certificates (serial, kind, subject, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, revocation_seq, der)
     SELECT '7e' || (10000000 + i), 'device', 'bulk-' || i, 'bulk-' || i, 1767225600000, 4102444800000, 1767225600000, 'revoked',
            1767225600000 + i, 'keyCompromise', (SELECT seq FROM revocation_state WHERE id = 1), ${der}
     FROM n`,
  );
}, 120_000);
afterAll(async () => {
  await t.destroy();
});

/** A device's mTLS connection, after one answered GET /v1/device; `closed` resolves when the server ends it. */
async function deviceConnection(id: string): Promise<{ socket: TLSSocket; closed: Promise<void> }> {
  const device = await enrollDevice(t, id);
  const url = new URL(t.url);
  const socket = connect({ host: url.hostname, port: Number(url.port), ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(`GET /v1/device HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
  const first = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  expect(first).toMatch(/^HTTP\/1\.1 200 /);
  return { socket, closed };
}

/** Revokes through the API; resolves with how long after its answer `closed` came (Infinity: not within 3 s). */
async function closedAfterRevoking(id: string, closed: Promise<void>): Promise<number> {
  const revoked = await call(`${t.url}/v1/admin/devices/${id}/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
  expect(revoked.status).toBe(200);
  const at = performance.now();
  return Promise.race([closed.then(() => performance.now() - at), new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 3000))]);
}

it('closes a revoked device reading a large CRL slowly', async () => {
  const { socket, closed } = await deviceConnection('slow-crl-reader');
  const crlBytes = (await call(`${t.url}/crl`, { ca: t.rootPem })).raw.length;
  expect(crlBytes).toBeGreaterThan(12_000_000);
  socket.pause(); // reads no more: the CRL's pieces wait for the socket to drain
  socket.write('GET /crl HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const revoked = await call(`${t.url}/v1/admin/devices/slow-crl-reader/revoke`, { ca: t.rootPem, json: { reason: 'keyCompromise' }, ...admin });
  expect(revoked.status).toBe(200);
  // A paused socket tells of its end only once read: read after the second is up.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  socket.resume();
  try {
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 3000))]);
    // Cut mid-answer: what the kernel held, not the whole CRL.
    expect(received).toBeLessThan(crlBytes);
  } finally {
    socket.destroy();
  }
});

it('closes a revoked device trickling a request body', async () => {
  const { socket, closed } = await deviceConnection('trickler');
  socket.write('POST /v1/renew HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"csr":"');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const trickle = setInterval(() => socket.write('A'), 100);
  try {
    const after = await closedAfterRevoking('trickler', closed);
    expect(after).toBeGreaterThanOrEqual(BUSY_CLOSE_GRACE_MS - 50); // it had its moment
    expect(after).toBeLessThan(1000);
  } finally {
    clearInterval(trickle);
    socket.destroy();
  }
});
