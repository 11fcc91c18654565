/**
 * OCSP answered before routing (src/http/ocsp-fast-path.ts): which requests it takes and
 * which it leaves to Fastify, what its answers carry, how a failure is answered, and that
 * the listener's per-source connection cap, request timeout and metrics still hold for it.
 */
import Fastify from 'fastify';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { ocspFastPath } from '../../src/http/ocsp-fast-path.js';
import { initInstance, openInstance, type Instance } from '../../src/instance.js';
import { freePort } from '../../scripts/server-process.js';
import { call } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const work = tempDir();

/**
 * Writes raw bytes to a plain-HTTP port (parts of them 50 ms apart) and reads until the
 * server closes (or 15 s pass: a busy machine is slow, not wrong).
 */
async function exchange(port: number, request: string | Buffer | readonly Buffer[]): Promise<{ head: string; body: Buffer; closed: boolean }> {
  const socket = connect({ host: '127.0.0.1', port }).on('error', () => undefined);
  await once(socket, 'connect');
  const data: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => data.push(chunk));
  for (const [i, part] of (Array.isArray(request) ? request : [request]).entries()) {
    if (i > 0) await delay(50);
    socket.write(part);
  }
  const closed = await Promise.race([once(socket, 'close').then(() => true), delay(15_000, false, { ref: false })]);
  socket.destroy();
  const received = Buffer.concat(data);
  const end = received.indexOf('\r\n\r\n');
  if (end < 0) return { head: received.toString('latin1'), body: Buffer.alloc(0), closed };
  return { head: received.subarray(0, end).toString('latin1'), body: received.subarray(end + 4), closed };
}

const header = (head: string, name: string) => new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1];

/** A nonce-less DER request for a serial, made by openssl. */
function ocspRequest(serial: string, issuerPath: string): Buffer {
  const file = join(work, `request-${serial}.der`);
  openssl(['ocsp', '-issuer', issuerPath, '-serial', serial, '-no_nonce', '-reqout', file]);
  return readFileSync(file);
}

describe('which requests the fast path takes', () => {
  let instance: Instance;
  let server: Server;
  let port: number;
  let open = true;
  const log = Fastify().log;
  let request: Buffer;
  let base64: string;
  /** How many 'data' listeners the last answered request had. */
  let lastDataListeners = -1;

  beforeAll(async () => {
    const dataDir = join(work, 'unit');
    await initInstance(dataDir, {});
    instance = await openInstance(dataDir, {});
    const fastPath = ocspFastPath({ ocsp: instance.signing().ocsp, log, open: () => open });
    // What Fastify would answer: anything the fast path leaves (/slow after a while, on a kept-alive connection).
    server = createServer((req, res) => {
      res.on('finish', () => (lastDataListeners = req.listenerCount('data')));
      if (fastPath(req, res)) return;
      if (req.url === '/slow') setTimeout(() => res.writeHead(404, { 'x-handed-over': 'yes', 'content-length': 0 }).end(), 100);
      else res.writeHead(404, { 'x-handed-over': 'yes', connection: 'close' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    request = ocspRequest('0x0123456789abcdef', join(dataDir, 'ca/issuer.pem'));
    base64 = request.toString('base64');
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await instance.close();
  });

  const post = (headers: string, body: Buffer | string) => Buffer.concat([Buffer.from(`POST /ocsp HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`), Buffer.from(body)]);
  const postOcsp = (extra = '', body: Buffer = request) => post(`Host: 127.0.0.1:8080\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${body.length}\r\n${extra}`, body);

  it.each([
    { name: 'post', send: () => postOcsp() },
    { name: 'post/host-name', send: () => post(`Host: ocsp.example.com\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n`, request) },
    { name: 'post/host-ipv6', send: () => post(`Host: [::1]:8080\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n`, request) },
    { name: 'get', send: () => `GET /ocsp/${base64} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n` },
    { name: 'get/escaped', send: () => `GET /ocsp/${encodeURIComponent(base64)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n` },
  ])('$name: answered here, in OCSP, with the request id', async ({ send }) => {
    const answer = await exchange(port, send());
    expect(answer.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(header(answer.head, 'x-handed-over')).toBeUndefined();
    expect(header(answer.head, 'content-type')).toBe('application/ocsp-response');
    expect(header(answer.head, 'cache-control')).toBe('no-store');
    expect(header(answer.head, 'x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const file = join(work, `answer-${Math.random()}.der`);
    writeFileSync(file, answer.body);
    expect(openssl(['ocsp', '-respin', file, '-resp_text', '-noverify'])).toMatch(/Cert Status: unknown/);
  });

  it('reads a body that came with its headers from the request in one piece, and collects one that comes apart as it comes', async () => {
    const unknown = /Cert Status: unknown/;
    const readBack = (body: Buffer) => {
      const file = join(work, `answer-${Math.random()}.der`);
      writeFileSync(file, body);
      return openssl(['ocsp', '-respin', file, '-resp_text', '-noverify']);
    };
    const together = await exchange(port, postOcsp());
    expect(readBack(together.body)).toMatch(unknown);
    expect(lastDataListeners).toBe(0);
    const [head, body] = [postOcsp().subarray(0, -request.length), request];
    const apart = await exchange(port, [head, body.subarray(0, 10), body.subarray(10)]);
    expect(apart.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(readBack(apart.body)).toMatch(unknown);
    expect(lastDataListeners).toBe(1);
  });

  it('echoes a well-formed X-Request-Id', async () => {
    const answer = await exchange(port, postOcsp('X-Request-Id: trace-42\r\n'));
    expect(header(answer.head, 'x-request-id')).toBe('trace-42');
  });

  it('an answer ready before the pipelined one ahead of it waits for it, and then goes out', async () => {
    const answer = await exchange(port, Buffer.concat([Buffer.from('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n'), postOcsp()]));
    expect(answer.head).toMatch(/^HTTP\/1\.1 404 /);
    expect(answer.body.toString('latin1')).toMatch(/^HTTP\/1\.1 200 [\s\S]*content-type: application\/ocsp-response/i);
  });

  it('answers an empty or unreadable body with malformedRequest, as the route does', async () => {
    for (const body of [Buffer.alloc(0), Buffer.from('not an OCSP request')]) {
      const answer = await exchange(port, postOcsp('', body));
      expect(header(answer.head, 'x-handed-over')).toBeUndefined();
      expect(answer.body.toString('hex')).toBe('30030a0101');
    }
  });

  it('a GET path asked again after more other paths than are kept read is read again, to the same request', async () => {
    const get = (der: Buffer) => `GET /ocsp/${encodeURIComponent(der.toString('base64'))} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
    // Other serials: the last two bytes of 0123456789abcdef replaced, 600 paths in all.
    const serialEnd = request.indexOf(Buffer.from('0123456789abcdef', 'hex')) + 8;
    const others = Array.from({ length: 600 }, (_, i) => {
      const der = Buffer.from(request);
      der.writeUInt16BE(i, serialEnd - 2);
      return get(der);
    });
    const received = await exchange(port, [get(request), ...others, get(request), 'GET /crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'].join(''));
    // The answers one after another: head, then as many bytes as its content-length says.
    const answers: { head: string; body: Buffer }[] = [];
    let rest = Buffer.concat([Buffer.from(`${received.head}\r\n\r\n`, 'latin1'), received.body]);
    while (rest.length > 0) {
      const end = rest.indexOf('\r\n\r\n');
      const head = rest.subarray(0, end).toString('latin1');
      const length = Number(header(head, 'content-length') ?? 0);
      answers.push({ head, body: rest.subarray(end + 4, end + 4 + length) });
      rest = rest.subarray(end + 4 + length);
    }
    const ocspAnswers = answers.filter((answer) => header(answer.head, 'content-type') === 'application/ocsp-response');
    expect(ocspAnswers).toHaveLength(602);
    const serialOf = (at: number) => {
      const file = join(work, `answer-again-${at}.der`);
      writeFileSync(file, ocspAnswers[at]!.body);
      return /Serial Number: ([0-9A-F]+)[^]*Cert Status: unknown/.exec(openssl(['ocsp', '-respin', file, '-resp_text', '-noverify']))?.[1];
    };
    expect([1, 600, 601].map(serialOf)).toEqual(['0123456789AB0000', '0123456789AB0257', '0123456789ABCDEF']);
  });

  it.each([
    { name: 'post/query', send: () => Buffer.from(postOcsp().toString('latin1').replace('POST /ocsp ', 'POST /ocsp?a=1 '), 'latin1') },
    { name: 'post/chunked', send: () => post('Host: localhost\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\n', `${request.length.toString(16)}\r\n${request.toString('latin1')}\r\n0\r\n\r\n`) },
    { name: 'post/no-length', send: () => post('Host: localhost\r\nContent-Type: application/ocsp-request\r\n', '') },
    { name: 'post/too-long', send: () => post('Host: localhost\r\nContent-Type: application/ocsp-request\r\nContent-Length: 5000\r\n', 'a'.repeat(5000)) },
    { name: 'post/media-type', send: () => post(`Host: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${request.length}\r\n`, request) },
    { name: 'host/missing', send: () => Buffer.concat([Buffer.from(`POST /ocsp HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n\r\n`), request]) },
    { name: 'host/twice', send: () => postOcsp('Host: example.com\r\n') },
    { name: 'host/unusual', send: () => post(`Host: a_b\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n`, request) },
    { name: 'get/other-escape', send: () => `GET /ocsp/%41${base64.slice(1)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n` },
    { name: 'get/not-base64', send: () => 'GET /ocsp/abc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' },
    { name: 'get/with-body', send: () => `GET /ocsp/${base64} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx` },
    { name: 'head', send: () => `HEAD /ocsp/${base64} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n` },
    { name: 'put', send: () => Buffer.from(postOcsp().toString('latin1').replace('POST ', 'PUT '), 'latin1') },
    { name: 'other-path', send: () => 'GET /crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' },
  ])('$name: left to Fastify', async ({ send }) => {
    const answer = await exchange(port, send());
    expect(header(answer.head, 'x-handed-over')).toBe('yes');
  });

  it('leaves everything to Fastify once the server is closing', async () => {
    open = false;
    try {
      expect(header((await exchange(port, postOcsp())).head, 'x-handed-over')).toBe('yes');
    } finally {
      open = true;
    }
  });

  it('answers internalError, and logs it, when the service fails; the server keeps serving', async () => {
    const failing = ocspFastPath({ ocsp: instance.signing().ocsp, log, open: () => true });
    const errors = vi.spyOn(log, 'error');
    await instance.close(); // the store is gone: every answer fails
    const broken = createServer((req, res) => failing(req, res) || res.writeHead(404).end());
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      const answer = await exchange((broken.address() as AddressInfo).port, postOcsp('X-Request-Id: broken-1\r\n'));
      expect(answer.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer.body.toString('hex')).toBe('30030a0102'); // OCSPResponse { internalError(2) }
      expect(errors).toHaveBeenCalledWith(expect.objectContaining({ requestId: 'broken-1' }), 'OCSP request failed');
    } finally {
      await new Promise((resolve) => broken.close(resolve));
      instance = await openInstance(join(work, 'unit'), {});
    }
  });
});

describe('on a real listener', () => {
  let t: TestServer;
  let port: number;
  let request: Buffer;

  beforeAll(async () => {
    const limits = { ...withoutRateLimits(DEFAULT_LIMITS), connectionsPerSource: 2, headersTimeoutMs: 1000, requestTimeoutMs: 2000 };
    t = await startTestServer(join(tempDir(), 'data'), limits, { statusPort: await freePort() });
    port = Number(new URL(t.server.statusUrl!).port);
    request = ocspRequest('0x42', t.issuerPath);
  });
  afterAll(() => t.destroy());

  const postOcsp = (keepAlive: boolean) =>
    Buffer.concat([
      Buffer.from(`POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`),
      request,
    ]);

  it('over HTTPS its answers carry the security headers every API answer there does', async () => {
    const response = await call(`${t.url}/ocsp`, { ca: t.rootPem, body: request, headers: { 'content-type': 'application/ocsp-request' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/ocsp-response');
    expect(response.headers).toMatchObject({
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-content-type-options': 'nosniff',
      'cross-origin-resource-policy': 'same-origin',
      'x-frame-options': 'SAMEORIGIN',
    });
  });

  it('a body that never arrives whole gets request_timeout, not an answer', async () => {
    const head = `POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${request.length}\r\n\r\n`;
    const answer = await exchange(port, Buffer.concat([Buffer.from(head), request.subarray(0, 10)]));
    expect(answer.head).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.body.toString('utf8'))).toMatchObject({ error: 'request_timeout' });
  });

  it('answers are counted under their routes, as Fastify counts the rest', async () => {
    const count = async () => {
      const text = (await exchange(port, 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).body.toString('utf8');
      const line = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      return {
        post: line('imprint_http_request_duration_seconds_count\\{route="/ocsp",method="POST",status_class="2xx"\\}'),
        get: line('imprint_http_request_duration_seconds_count\\{route="/ocsp/\\*",method="GET",status_class="2xx"\\}'),
        unknown: line('imprint_ocsp_responses_total\\{status="unknown",kind="fresh"\\}'),
      };
    };
    const before = await count();
    await exchange(port, postOcsp(false));
    await exchange(port, `GET /ocsp/${encodeURIComponent(request.toString('base64'))} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    const after = await count();
    expect({ post: after.post - before.post, get: after.get - before.get, unknown: after.unknown - before.unknown }).toEqual({ post: 1, get: 1, unknown: 2 });
  });

  // Last: the capped connections' ends reach the server a moment after the test ends.
  it('the per-source connection cap holds: a third connection is closed unanswered, the two open ones still get answers', async () => {
    const sockets = [connect({ host: '127.0.0.1', port }), connect({ host: '127.0.0.1', port })];
    try {
      await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('connect', resolve))));
      const answered = (socket: ReturnType<typeof connect>) =>
        new Promise<string>((resolve) => {
          socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
          socket.write(postOcsp(true));
        });
      for (const socket of sockets) expect(await answered(socket)).toMatch(/^HTTP\/1\.1 200 /);
      const third = await exchange(port, postOcsp(false));
      expect(third.closed).toBe(true);
      expect(third.head).toBe('');
      for (const socket of sockets) expect(await answered(socket)).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});
