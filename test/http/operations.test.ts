/**
 * Running it for real: health on both listeners, request ids, the audit log lines,
 * Prometheus metrics (one process and a two-worker cluster), and the OpenAPI document.
 */
import { readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caPaths } from '../../src/ca/ca-directory.js';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { VERSION } from '../../src/version.js';
import { freePort } from '../../scripts/server-process.js';
import { call, type Response } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';

/** A plain-HTTP request to the status listener. */
function plain(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let body: unknown = raw.toString('utf8');
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          // text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, raw });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

/** A server started with a logger whose lines the test reads. */
interface LoggedServer {
  readonly server: RunningServer;
  readonly dataDir: string;
  readonly rootPem: string;
  readonly lines: Record<string, unknown>[];
  readonly raw: string[];
}

async function startLogged(options: { statusPort?: number } = {}): Promise<LoggedServer> {
  const dataDir = join(tempDir(), 'data');
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const server = await startServer({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    limits: withoutRateLimits(DEFAULT_LIMITS),
    logger: true,
    logLevel: 'info',
    logStream: {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
    ...(options.statusPort === undefined ? {} : { statusPort: options.statusPort, init: { hostnames: ['127.0.0.1'] } }),
  });
  return { server, dataDir, rootPem: readFileSync(caPaths(dataDir).root, 'utf8'), lines, raw };
}

let t: LoggedServer;
const get = (path: string, headers: Record<string, string> = {}, who: { cert: string; key: string } | undefined = undefined) =>
  call(`${t.server.url}${path}`, { ca: t.rootPem, headers, ...(who ?? {}) });

beforeAll(async () => {
  t = await startLogged({ statusPort: await freePort() });
});
afterAll(async () => {
  await t.server.close();
  rmSync(t.dataDir, { recursive: true, force: true });
});

describe('health', () => {
  it.each(['https', 'status'] as const)('%s: /livez, /healthz and /readyz answer', async (listener) => {
    const fetch = (path: string) => (listener === 'https' ? get(path) : plain(`${t.server.statusUrl}${path}`));
    for (const path of ['/livez', '/healthz']) {
      const live = await fetch(path);
      expect(live.status, path).toBe(200);
      expect(live.body).toEqual({ status: 'ok' });
    }
    const ready = await fetch('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', version: VERSION, checks: { store: 'ok', ca: 'ok', listener: 'ok' } });
  });

  it('the start-up line says version, public URL, listeners, workers and store', () => {
    const start = t.lines.find((line) => line.event === 'start');
    expect(start).toMatchObject({
      level: 30,
      version: VERSION,
      publicUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      listeners: { https: t.server.url, status: t.server.statusUrl },
      workers: 1,
      store: { kind: 'sqlite', path: join(t.dataDir, 'imprint.db') },
    });
  });
});

describe('request ids', () => {
  it('echoes a well-formed X-Request-Id, on success and on errors, and on the status listener', async () => {
    expect((await get('/livez', { 'x-request-id': 'abc-123_XYZ.7' })).headers['x-request-id']).toBe('abc-123_XYZ.7');
    const missing = await get('/no/such/route', { 'x-request-id': 'trace:0001' });
    expect(missing.status).toBe(404);
    expect(missing.headers['x-request-id']).toBe('trace:0001');
    const refused = await get('/v1/admin/devices', { 'x-request-id': 'r'.repeat(128) });
    expect(refused.status).toBe(401);
    expect(refused.headers['x-request-id']).toBe('r'.repeat(128));
    expect((await plain(`${t.server.statusUrl}/crl`, { 'x-request-id': 'crl-1' })).headers['x-request-id']).toBe('crl-1');
  });

  it.each([
    { name: 'absent', headers: {} },
    { name: 'too-long', headers: { 'x-request-id': 'r'.repeat(129) } },
    { name: 'space', headers: { 'x-request-id': 'a b' } },
    { name: 'non-ascii', headers: { 'x-request-id': 'caf\u00e9' } },
  ])('request-id/$name: a new one is generated', async ({ headers }) => {
    const response = await get('/livez', headers as Record<string, string>);
    const id = response.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });
});

describe('readiness of a server whose store is gone', () => {
  it('answers 503 not_ready with the reason, on both listeners, while /livez stays 200', async () => {
    const broken = await startLogged({ statusPort: await freePort() });
    try {
      await broken.server.instance.store.close();
      const https = await call(`${broken.server.url}/readyz`, { ca: broken.rootPem });
      expect(https.status).toBe(503);
      expect(https.body).toEqual({ status: 'not_ready', reason: expect.stringMatching(/^store: /) });
      const status = await plain(`${broken.server.statusUrl}/readyz`);
      expect(status.status).toBe(503);
      expect(status.body.reason).toMatch(/^store: /);
      expect((await call(`${broken.server.url}/livez`, { ca: broken.rootPem })).status).toBe(200);
    } finally {
      await Promise.all([broken.server.app.close()]);
      rmSync(broken.dataDir, { recursive: true, force: true });
    }
  });
});
