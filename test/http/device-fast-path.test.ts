/**
 * GET /v1/device of a device the process already knows is answered before Fastify's
 * routing (deviceFastPath in src/http/routes/device-routes.ts), over real mTLS sockets: with
 * the route's body and headers, under the route's request metric; everything unusual about
 * the request, and every device the store must be asked about, still goes to the route.
 */
import { connect } from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { metrics, type ImprintMetrics } from '../../src/http/metrics.js';
import { call, type Response } from '../helpers/https.js';
import { enrollDevice, issueOperator, startTestServer, type EnrolledDevice, type TestServer } from '../helpers/server.js';

let t: TestServer;
let device: EnrolledDevice;
/** The statuses of the answers the fast path gave (observed as it writes each). */
const fastAnswers: number[] = [];
let routed: MockInstance<ImprintMetrics['observeRequest']>;

beforeAll(async () => {
  // The fast path takes its request metric's observer when the app is built: wrap it first.
  const made = metrics().answeredObserver.bind(metrics());
  vi.spyOn(metrics(), 'answeredObserver').mockImplementation((route, method) => {
    const observe = made(route, method);
    return route === '/v1/device' ? (status, seconds) => (fastAnswers.push(status), observe(status, seconds)) : observe;
  });
  t = await startTestServer();
  device = await enrollDevice(t, 'fast-path-1');
});
afterAll(() => t.destroy());
beforeEach(() => {
  vi.restoreAllMocks();
  routed = vi.spyOn(metrics(), 'observeRequest');
});

/** GET /v1/device as `device` on a new connection. */
const asDevice = (path = '/v1/device', options: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
  call(`${t.url}${path}`, { ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem, ...options });

/**
 * How the request was answered: before routing, or by the route. The fast path observes
 * its answer as it writes it; the route's onResponse hook once the answer is out, which may
 * be after the client has read it: so this waits for one, then a moment for a second.
 */
async function answeredBy(): Promise<'fast path' | 'route' | 'both'> {
  const seen = () => ({ fast: fastAnswers.length > 0, route: routed.mock.calls.length > 0 });
  await vi.waitFor(() => expect(Object.values(seen())).toContain(true));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const { fast, route } = seen();
  return fast && route ? 'both' : fast ? 'fast path' : 'route';
}

/** Forgets what was observed so far, once the answers already given are all observed. */
async function observeAfresh(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  fastAnswers.length = 0;
  routed.mockClear();
}

/** The headers a client relies on: all but the date and the request id. */
const stableHeaders = (response: Response) => Object.fromEntries(Object.entries(response.headers).filter(([name]) => name !== 'date' && name !== 'x-request-id'));

describe('GET /v1/device before routing', () => {
  it('a known device is answered before routing, with the route’s body and headers and its request id echoed', async () => {
    const first = await asDevice('/v1/device', { headers: { 'x-request-id': 'first-1' } });
    expect(await answeredBy()).toBe('route'); // not yet known: the store is asked
    await observeAfresh();
    const again = await asDevice('/v1/device', { headers: { 'x-request-id': 'again-2' } });
    expect(await answeredBy()).toBe('fast path');
    expect(fastAnswers).toEqual([200]);
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(again.raw.toString()).toBe(first.raw.toString());
    expect(again.body).toMatchObject({ deviceId: 'fast-path-1', status: 'active', serial: device.serial });
    expect(stableHeaders(again)).toEqual(stableHeaders(first));
    expect([first.headers['x-request-id'], again.headers['x-request-id']]).toEqual(['first-1', 'again-2']);
    expect(again.headers['x-content-type-options']).toBe('nosniff');
  });

  it.each([
    ['a query string', '/v1/device?verbose=1', {}, 200],
    ['HEAD', '/v1/device', { method: 'HEAD' }, 200],
    ['a trailing slash', '/v1/device/', {}, 404],
    ['a browser’s cross-site request', '/v1/device', { headers: { 'sec-fetch-site': 'cross-site' } }, 403],
    ['an Origin header', '/v1/device', { headers: { origin: 'https://elsewhere.example' } }, 403],
    ['a body', '/v1/device', { method: 'GET', body: '{}', headers: { 'content-type': 'application/json', 'content-length': '2' } }, 200],
  ] as const)('hands %s to the route', async (_what, path, options, status) => {
    await asDevice(); // known from here on
    await observeAfresh();
    const response = await asDevice(path, options);
    expect(response.status).toBe(status);
    expect(await answeredBy()).toBe('route');
  });

  it('hands a request with two Host headers to the route, which refuses it', async () => {
    await asDevice();
    await observeAfresh();
    const url = new URL(t.url);
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = connect({ host: url.hostname, port: Number(url.port), ca: t.rootPem, cert: device.cert, key: device.key.privateKeyPem }, () =>
        socket.write(`GET /v1/device HTTP/1.1\r\nHost: ${url.host}\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`),
      );
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(await answeredBy()).toBe('route');
  });

  it('hands an operator and a client without a certificate to the route, which refuses them', async () => {
    const operator = await issueOperator(t, 'fast-path-op', 'admin');
    await observeAfresh();
    const asOperator = await call(`${t.url}/v1/device`, { ca: t.rootPem, ...operator });
    const anonymous = await call(`${t.url}/v1/device`, { ca: t.rootPem });
    expect([asOperator.status, asOperator.body.error]).toEqual([403, 'forbidden']);
    expect([anonymous.status, anonymous.body.error]).toEqual([401, 'client_cert_required']);
    expect(fastAnswers).toEqual([]);
  });

  it('hands a device revoked after it was known to the route, which refuses it', async () => {
    const revoked = await enrollDevice(t, 'fast-path-2');
    const as = { ca: t.rootPem, cert: revoked.cert, key: revoked.key.privateKeyPem };
    expect((await call(`${t.url}/v1/device`, as)).status).toBe(200);
    expect((await call(`${t.url}/v1/device`, as)).status).toBe(200);
    await t.server.instance.fleet.revokeDevice('fast-path-2', 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    await observeAfresh();
    const refused = await call(`${t.url}/v1/device`, as);
    expect([refused.status, refused.body.error]).toEqual([403, 'device_revoked']);
    expect(fastAnswers).toEqual([]);
  });
});
