/**
 * The listeners' timeouts against slow clients as configured, also when the request
 * timeout is set below the header timeout (Node would otherwise swap the two).
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { freePort } from '../../scripts/server-process.js';
import { tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let port: number;

beforeAll(async () => {
  const limits = { ...withoutRateLimits(DEFAULT_LIMITS), headersTimeoutMs: 4000, requestTimeoutMs: 1000 };
  t = await startTestServer(join(tempDir(), 'data'), limits, { statusPort: await freePort() });
  port = Number(new URL(t.server.statusUrl!).port);
});
afterAll(() => t.destroy());

/** Sends the bytes and waits for the first answer bytes; the milliseconds it took and the status line. */
async function firstAnswer(bytes: string): Promise<{ ms: number; status: string }> {
  const socket = connect({ host: '127.0.0.1', port }).on('error', () => undefined);
  await once(socket, 'connect');
  const started = Date.now();
  socket.write(bytes);
  try {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    return { ms: Date.now() - started, status: chunk.toString('latin1').split('\r\n')[0]! };
  } finally {
    socket.destroy();
  }
}

it.each([
  { name: 'body', bytes: 'POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0123' },
  { name: 'header', bytes: 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n' },
])('a request whose $name is not all sent within the request timeout is answered 408 then, not at the header timeout', async ({ bytes }) => {
  const answer = await firstAnswer(bytes);
  expect(answer.status).toMatch(/^HTTP\/1\.1 408 /);
  // The request timeout plus Node's checking interval (1 s), well short of the 4 s header timeout.
  expect(answer.ms).toBeLessThan(3000);
});
