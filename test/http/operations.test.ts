/**
 * Running it for real: health on both listeners, request ids, the audit log lines,
 * Prometheus metrics (one process and a two-worker cluster), and the OpenAPI document.
 */
import { readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caPaths } from '../../src/ca/ca-directory.js';
import { DEFAULT_LIMITS, withoutRateLimits, type Limits } from '../../src/http/limits.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { VERSION } from '../../src/version.js';
import { routesOf } from '../../src/http/openapi.js';
import { metrics } from '../../src/http/metrics.js';
import { freePort } from '../../scripts/server-process.js';
import { imprint } from '../helpers/cli.js';
import { databaseUrlFor, testStore } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { spawnTestServer } from '../helpers/server.js';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { Ajv } from 'ajv';

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

async function startLogged(options: { statusPort?: number; limits?: Limits } = {}): Promise<LoggedServer> {
  const dataDir = join(tempDir(), 'data');
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const server = await startServer({
    dataDir,
    databaseUrl: await databaseUrlFor(dataDir),
    host: '127.0.0.1',
    port: 0,
    limits: options.limits ?? withoutRateLimits(DEFAULT_LIMITS),
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

  it('the start-up line says version, public URL, listeners, workers and store', async () => {
    const databaseUrl = await databaseUrlFor(t.dataDir);
    const start = t.lines.find((line) => line.event === 'start');
    expect(start).toMatchObject({
      level: 30,
      version: VERSION,
      publicUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      listeners: { https: t.server.url, status: t.server.statusUrl },
      workers: 1,
      store: testStore === 'sqlite' ? { kind: 'sqlite', path: join(t.dataDir, 'imprint.db') } : { kind: 'postgres', path: databaseUrl },
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
    // Refused before routing (a URL that does not decode), and by the OCSP routes' own handler.
    const undecodable = await get('/v1/%zz', { 'x-request-id': 'bad-url-1' });
    expect(undecodable.status).toBe(400);
    expect(undecodable.headers['x-request-id']).toBe('bad-url-1');
    expect((await get('/ocsp/%%%', { 'x-request-id': 'ocsp-1' })).headers['x-request-id']).toBe('ocsp-1');
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
      await broken.server.close().catch(() => undefined); // its store is closed already
      rmSync(broken.dataDir, { recursive: true, force: true });
    }
  });
});

/** Waits (bounded) for a log line that matches. */
async function logLine(server: LoggedServer, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = server.lines.find(match);
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no such log line');
}

async function mint(server: RunningServer): Promise<{ id: string; token: string }> {
  const { tokens } = await server.instance.tokens.mint({}, { actor: 'cli:test', role: 'admin' });
  return tokens[0]!;
}

async function enroll(id: string, token: string, requestId?: string): Promise<Response> {
  const key = await generateDeviceKey();
  return call(`${t.server.url}/v1/enroll`, {
    ca: t.rootPem,
    json: { csr: buildCsr(key, id) },
    headers: { authorization: `Bearer ${token}`, ...(requestId ? { 'x-request-id': requestId } : {}) },
  });
}

describe('log lines', () => {
  it('one line per enrollment and per refusal, with request id, actor, device, serial, outcome, source and duration; never a token', async () => {
    const token = await mint(t.server);
    const ok = await enroll('log-device-1', token.token, 'enroll-req-1');
    expect(ok.status).toBe(201);
    const line = await logLine(t, (each) => each.requestId === 'enroll-req-1');
    expect(line).toMatchObject({
      level: 30,
      event: 'enroll',
      protocol: 'json',
      outcome: 'ok',
      status: 201,
      actor: 'anonymous',
      deviceId: 'log-device-1',
      tokenId: token.id,
      serial: ok.body.serial,
      source: '127.0.0.1',
      durationMs: expect.any(Number),
    });

    const refused = await enroll('log-device-2', `imp_${'A'.repeat(43)}`, 'enroll-req-2');
    expect(refused.status).toBe(401);
    expect(refused.headers['x-request-id']).toBe('enroll-req-2');
    expect(await logLine(t, (each) => each.requestId === 'enroll-req-2')).toMatchObject({ event: 'enroll', outcome: 'token_invalid', status: 401 });
    // A refusal names the token (by id) and the device it was about once the service knows them.
    const reused = await enroll('log-device-3', token.token, 'enroll-req-3');
    expect(reused.status).toBe(409);
    expect(await logLine(t, (each) => each.requestId === 'enroll-req-3')).toMatchObject({ outcome: 'token_used', tokenId: token.id });

    // Every line so far, including the token mint and the refusal, holds no token.
    expect(t.raw.length).toBeGreaterThan(2);
    for (const raw of t.raw) expect(raw).not.toMatch(/imp_/);
  });

  it('admin calls are logged with the operator as actor; other routes write no line', async () => {
    const admin = await operator(t.server, 'ops-admin', 'admin');
    const before = t.lines.length;
    await get('/v1/ca', { 'x-request-id': 'quiet-1' });
    const minted = await call(`${t.server.url}/v1/admin/tokens`, { ca: t.rootPem, ...admin, json: { count: 1 }, headers: { 'x-request-id': 'mint-1' } });
    expect(minted.status).toBe(201);
    expect(await logLine(t, (each) => each.requestId === 'mint-1')).toMatchObject({
      event: 'tokens.mint',
      outcome: 'ok',
      actor: 'operator:ops-admin',
      tokenId: minted.body.tokens[0].id,
      count: 1,
    });
    expect(t.lines.slice(before).some((each) => each.requestId === 'quiet-1')).toBe(false);
    for (const raw of t.raw) expect(raw).not.toContain(minted.body.tokens[0].token);
  });
});

describe('a client that hangs up mid-request', () => {
  it('is neither an error in the log nor a database outage, and the server goes on', async () => {
    const before = t.lines.length;
    const url = new URL(t.server.url);
    for (let i = 0; i < 3; i++) {
      // Headers promise 4,096 bytes of body, 10 arrive, then the connection closes.
      const socket = tlsConnect({ host: url.hostname, port: Number(url.port), ca: t.rootPem });
      await once(socket, 'secureConnect');
      socket.write(`POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4096\r\nx-request-id: gone-${i}\r\n\r\n{"csr": "-`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      await once(socket, 'close');
    }
    // Before the fix each of these wrote an error line with a stack, taken for a database outage.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lines = t.lines.slice(before);
    expect(lines.filter((each) => Number(each.level) >= 50)).toEqual([]);
    expect(lines.some((each) => JSON.stringify(each).includes('service_unavailable'))).toBe(false);
    expect((await get('/healthz')).status).toBe(200);
  });
});

/** An operator's client certificate and key. */
async function operator(server: RunningServer, name: string, role: 'admin' | 'provisioner') {
  const issued = await server.instance.signing().operators.issue({ name, role }, { actor: 'cli:test', role: 'admin' });
  return { cert: issued.certificatePem + issued.chainPem[0], key: issued.keyPem };
}

/** The value of one sample in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((label) => present.includes(label))) return Number(match[3]);
  }
  return 0;
}

describe('a rate-limit trip', () => {
  it('is logged with the limit that refused, and counted', async () => {
    const limited = await startLogged({ limits: { ...withoutRateLimits(DEFAULT_LIMITS), failedTokensPerMinute: 2 } });
    try {
      const refused = (requestId: string) =>
        call(`${limited.server.url}/v1/enroll`, { ca: limited.rootPem, json: { csr: 'x' }, headers: { authorization: `Bearer imp_${'D'.repeat(43)}`, 'x-request-id': requestId } });
      const before = sample(await metrics().exposition(), 'imprint_rate_limited_total', { limit: 'failed_tokens_per_minute' });
      expect((await refused('limit-1')).status).toBe(401);
      expect((await refused('limit-2')).status).toBe(401);
      const tripped = await refused('limit-3');
      expect(tripped).toMatchObject({ status: 429, body: { error: 'rate_limited' } });
      expect(tripped.headers['x-request-id']).toBe('limit-3');
      expect(await logLine(limited, (each) => each.requestId === 'limit-3')).toMatchObject({
        event: 'enroll',
        outcome: 'rate_limited',
        limit: 'failed_tokens_per_minute',
        status: 429,
      });
      expect(sample(await metrics().exposition(), 'imprint_rate_limited_total', { limit: 'failed_tokens_per_minute' })).toBe(before + 1);
    } finally {
      await limited.server.close();
      rmSync(limited.dataDir, { recursive: true, force: true });
    }
  });
});

describe('metrics', () => {
  const scrape = async () => {
    const response = await plain(`${t.server.statusUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.body as string;
  };

  it('counters move with an enrollment, a refusal and OCSP requests', async () => {
    const before = await scrape();
    expect(await enroll('metrics-device-1', (await mint(t.server)).token)).toMatchObject({ status: 201 });
    expect(await enroll('metrics-device-2', `imp_${'B'.repeat(43)}`)).toMatchObject({ status: 401 });
    const ocsp = await call(`${t.server.url}/ocsp`, { ca: t.rootPem, body: Buffer.from('not an OCSP request'), headers: { 'content-type': 'application/ocsp-request' } });
    expect(ocsp.status).toBe(200);
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('imprint_enrollments_total', { protocol: 'json', outcome: 'ok' })).toBe(1);
    expect(delta('imprint_enrollments_total', { protocol: 'json', outcome: 'token_invalid' })).toBe(1);
    expect(delta('imprint_ocsp_responses_total', { status: 'malformed', kind: 'none' })).toBe(1);
    expect(delta('imprint_http_request_duration_seconds_count', { route: '/v1/enroll', method: 'POST', status_class: '2xx' })).toBe(1);
    expect(delta('imprint_http_request_duration_seconds_count', { route: '/v1/enroll', method: 'POST', status_class: '4xx' })).toBe(1);
    expect(delta('imprint_db_transaction_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    for (const name of ['imprint_certificates_expiring', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds']) expect(after).toContain(`${name}`);
    expect(after).toMatch(/imprint_certificates_expiring\{within="30d"\} \d+/);
  });

  it('a CRL fetch sets the CRL gauges; a revocation is timed to its enforcement', async () => {
    expect((await get('/crl')).status).toBe(200);
    const device = await enroll('metrics-revoked', (await mint(t.server)).token);
    expect(device.status).toBe(201);
    const before = sample(await scrape(), 'imprint_revocation_propagation_seconds_count');
    await t.server.instance.fleet.revokeDevice('metrics-revoked', 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = sample(await scrape(), 'imprint_revocation_propagation_seconds_count');
    }
    expect(after).toBe(before + 1);
    const text = await scrape();
    expect(sample(text, 'imprint_crl_number', { scope: 'issuer' })).toBeGreaterThan(0);
    expect(sample(text, 'imprint_crl_size_bytes', { scope: 'issuer' })).toBeGreaterThan(100);
    expect(text).toMatch(/imprint_crl_build_duration_seconds\{scope="issuer"\} [\d.e-]+/);
  });

  it('on HTTPS, /metrics is for admins only', async () => {
    expect(await get('/metrics')).toMatchObject({ status: 401, body: { error: 'client_cert_required' } });
    expect(await get('/metrics', {}, await operator(t.server, 'metrics-provisioner', 'provisioner'))).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    const admitted = await get('/metrics', {}, await operator(t.server, 'metrics-admin', 'admin'));
    expect(admitted.status).toBe(200);
    expect(admitted.body).toContain('imprint_enrollments_total');
  });
});

describe('metrics with serve --workers 2', () => {
  it('one scrape of the status listener shows the whole server: every worker\'s enrollments, process metrics per worker', async () => {
    const dataDir = join(tempDir(), 'data');
    const statusPort = await freePort();
    const server = await spawnTestServer(dataDir, ['--workers', '2', '--status-port', String(statusPort)]);
    try {
      const tokens = (await imprint(['tokens', 'create', '--data', dataDir, '--count', '6'])).stdout.trim().split('\n');
      expect(tokens).toHaveLength(6);
      // New connections are spread over the workers: one scrape counts them all, wherever they landed.
      for (const [i, token] of tokens.entries()) {
        const response = await call(`${server.url}/v1/enroll`, {
          ca: server.rootPem,
          json: { csr: buildCsr(await generateDeviceKey(), `cluster-metrics-${i}`) },
          headers: { authorization: `Bearer ${token}` },
        });
        expect(response.status).toBe(201);
      }
      expect((await call(`${server.url}/v1/enroll`, { ca: server.rootPem, json: { csr: 'x' } })).status).toBe(401);

      const scraped = await plain(`http://127.0.0.1:${statusPort}/metrics`);
      expect(scraped.status).toBe(200);
      const text = scraped.body as string;
      expect(sample(text, 'imprint_enrollments_total', { protocol: 'json', outcome: 'ok' })).toBe(6);
      expect(sample(text, 'imprint_enrollments_total', { protocol: 'json', outcome: 'token_missing' })).toBe(1);
      expect(sample(text, 'imprint_http_request_duration_seconds_count', { route: '/v1/enroll', method: 'POST', status_class: '2xx' })).toBe(6);
      const workers = new Set([...text.matchAll(/^process_resident_memory_bytes\{worker="(\d+)"\}/gm)].map((match) => match[1]));
      expect(workers.size).toBe(2);
      // Both listeners of both workers are ready.
      for (let i = 0; i < 4; i++) expect((await plain(`http://127.0.0.1:${statusPort}/readyz`)).status).toBe(200);
    } finally {
      await server.killGroup('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('OpenAPI', () => {
  /** Fastify's `/a/:id` and `/ocsp/*` as OpenAPI names them. */
  const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}');

  it('documents every route of the HTTPS listener (but itself), each with a success response', async () => {
    const document = await get('/openapi.json');
    expect(document.status).toBe(200);
    expect(document.body).toMatchObject({ openapi: '3.1.0', info: { title: 'imprint', version: VERSION } });
    // The console's UI routes are hidden on purpose: they serve its page, not API clients.
    const routes = routesOf(t.server.app).filter((route) => route.method !== 'HEAD' && route.url !== '/openapi.json' && !route.hidden);
    const hidden = routesOf(t.server.app).filter((route) => route.hidden && route.url !== '/openapi.json');
    expect(hidden.filter((route) => !route.url.startsWith('/console'))).toEqual([]);
    expect(routes.length).toBeGreaterThan(20);
    for (const route of routes) {
      const operation = document.body.paths[openApiPath(route.url)]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.url}`).toBeDefined();
      const success = Object.entries(operation.responses as Record<string, { content?: unknown }>).filter(([status]) => status.startsWith('2'));
      expect(success.length, `${route.method} ${route.url} documents a success`).toBeGreaterThan(0);
      for (const [status, response] of success) expect(response.content, `${route.method} ${route.url} ${status} has a body schema`).toBeDefined();
    }
    expect(document.body.paths['/openapi.json']).toBeUndefined();
    // Not on the status listener.
    expect((await plain(`${t.server.statusUrl}/openapi.json`)).status).toBe(404);
  });

  it('real answers validate against their documented response schemas', async () => {
    const document = (await get('/openapi.json')).body;
    const ajv = new Ajv({ strict: false, allErrors: true });
    const check = (path: string, method: string, response: Response) => {
      const documented = document.paths[path][method].responses[String(response.status)];
      expect(documented, `${method} ${path} ${response.status} is documented`).toBeDefined();
      const schema = documented.content['application/json'].schema;
      const validate = ajv.compile(schema);
      expect(validate(response.body), `${method} ${path} ${response.status}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    };
    const admin = await operator(t.server, 'openapi-admin', 'admin');
    const as = (path: string, json?: unknown) => call(`${t.server.url}${path}`, { ca: t.rootPem, ...admin, ...(json === undefined ? {} : { json }) });

    const token = await mint(t.server);
    const enrolled = await enroll('openapi-device', token.token);
    check('/v1/enroll', 'post', enrolled);
    check('/v1/enroll', 'post', await enroll('openapi-device-2', `imp_${'C'.repeat(43)}`));
    check('/readyz', 'get', await get('/readyz'));
    check('/v1/admin/tokens', 'post', await as('/v1/admin/tokens', { count: 2, label: 'openapi' }));
    check('/v1/admin/tokens', 'get', await as('/v1/admin/tokens?limit=5'));
    check('/v1/admin/devices', 'get', await as('/v1/admin/devices?limit=5'));
    check('/v1/admin/devices/{id}', 'get', await as('/v1/admin/devices/openapi-device'));
    check('/v1/admin/audit', 'get', await as('/v1/admin/audit?limit=5'));
    check('/v1/admin/devices/{id}/revoke', 'post', await as('/v1/admin/devices/openapi-device/revoke', { reason: 'superseded' }));
    check('/v1/admin/devices', 'get', await get('/v1/admin/devices'));
  });
});
