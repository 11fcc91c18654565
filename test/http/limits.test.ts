/**
 * What one client may cost: a flood of bad tokens from one source is cut off while another
 * source still enrolls; the per-source enroll rate, the connection cap, and the timeouts
 * against slow clients. Sources are distinct loopback addresses (127.0.0.0/8).
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type Limits } from '../../src/http/limits.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { snapshot } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const LIMITS: Limits = {
  ...DEFAULT_LIMITS,
  enrollPerMinute: 40,
  failedTokensPerMinute: 10,
  connectionsPerSource: 8,
  headersTimeoutMs: 1000,
  requestTimeoutMs: 3000,
};

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer(undefined, LIMITS);
});
afterAll(async () => {
  await t.destroy();
});

const port = () => Number(new URL(t.url).port);

async function enrollFrom(localAddress: string, token: string, csr: unknown = 'x'): Promise<Response> {
  return call(`${t.url}/v1/enroll`, { ca: t.rootPem, localAddress, json: { csr }, headers: { authorization: `Bearer ${token}` } });
}

function expectRateLimited(response: Response) {
  expect(response.status).toBe(429);
  expect(response.body.error).toBe('rate_limited');
  const retryAfter = Number(response.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

describe('rate limits', () => {
  it('a source flooding bad tokens is shut out while a second source still enrolls', async () => {
    const flooder = '127.0.0.2';
    const fakeToken = `imp_${'A'.repeat(43)}`;
    const statuses = new Map<number, number>();
    // The flood: 8 requests in flight at all times, 200 requests or 10 seconds at most.
    const deadline = Date.now() + 10_000;
    let sent = 0;
    const flood = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (sent < 200 && Date.now() < deadline) {
          sent++;
          const response = await enrollFrom(flooder, fakeToken);
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          if (response.status === 429) expectRateLimited(response);
          else expect(response.body.error).toBe('token_invalid');
        }
      }),
    );
    // Meanwhile a device behind another address enrolls with its own token.
    const key = await generateDeviceKey();
    const { token } = await t.mintToken();
    const enrolled = await enrollFrom('127.0.0.3', token, buildCsr(key, 'bystander-001'));
    await flood;

    expect(enrolled.status).toBe(201);
    expect(statuses.get(401)).toBe(LIMITS.failedTokensPerMinute);
    expect(statuses.get(429)).toBeGreaterThan(0);
    expect([...statuses.keys()].sort()).toEqual([401, 429]);
  });

  it('the shut-out source is refused before its token is looked at: a valid token stays unused', async () => {
    const { token } = await t.mintToken();
    const before = snapshot(t.dataDir).state;
    const key = await generateDeviceKey();
    expectRateLimited(await enrollFrom('127.0.0.2', token, buildCsr(key, 'would-be-001')));
    expect(snapshot(t.dataDir).state).toBe(before);
  });

  it('enroll requests per source are capped whatever their outcome', async () => {
    const { token } = await t.mintToken();
    const statuses: number[] = [];
    for (let i = 0; i <= LIMITS.enrollPerMinute!; i++) statuses.push((await enrollFrom('127.0.0.4', token, 'not a csr')).status);
    expect(statuses.slice(0, LIMITS.enrollPerMinute!).every((status) => status === 400)).toBe(true);
    expectRateLimited(await enrollFrom('127.0.0.4', token, 'not a csr'));
    // Other routes and other sources are not affected.
    expect((await call(`${t.url}/healthz`, { ca: t.rootPem, localAddress: '127.0.0.4' })).status).toBe(200);
    expect((await enrollFrom('127.0.0.5', token, 'not a csr')).status).toBe(400);
  });
});

describe('connections and timeouts', () => {
  const openSocket = (localAddress: string) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = tcpConnect({ host: '127.0.0.1', port: port(), localAddress }, () => resolve(socket));
      socket.on('error', reject);
    });
  const closedWithin = (socket: Socket, ms: number) =>
    new Promise<boolean>((resolve) => {
      if (socket.destroyed) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });

  it('a source holding its share of connections gets the next one closed; others still connect', async () => {
    const source = '127.0.0.6';
    const held = await Promise.all(Array.from({ length: LIMITS.connectionsPerSource }, () => openSocket(source)));
    const extra = await openSocket(source);
    expect(await closedWithin(extra, 2000)).toBe(true);
    expect((await call(`${t.url}/healthz`, { ca: t.rootPem, localAddress: '127.0.0.7' })).status).toBe(200);
    held[0]!.destroy();
    await expect.poll(async () => (await call(`${t.url}/healthz`, { ca: t.rootPem, localAddress: source }).catch(() => ({ status: 0 }))).status, { timeout: 2000 }).toBe(200);
    for (const socket of held) socket.destroy();
  });

  it('a slowloris client trickling its headers gets 408 request_timeout and is disconnected', async () => {
    const socket = tlsConnect({ socket: await openSocket('127.0.0.8'), ca: t.rootPem, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    // One header line every 200 ms, never finishing; bounded at 50 lines.
    let lines = 0;
    const trickle = setInterval(() => {
      if (socket.destroyed || ++lines > 50) return clearInterval(trickle);
      socket.write(`X-Slow-${lines}: 1\r\n`);
    }, 200);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 8000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    clearInterval(trickle);
    expect(closed).toBe(true);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'request_timeout' });
  });

  it('headers over the size limit get 431 headers_too_large in the contract shape', async () => {
    const response = await call(`${t.url}/healthz`, { ca: t.rootPem, headers: { 'x-big': 'a'.repeat(20_000) } });
    expect(response.status).toBe(431);
    expect(response.body).toMatchObject({ error: 'headers_too_large' });
  });
});
