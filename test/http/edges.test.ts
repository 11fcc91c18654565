/**
 * The edges of the HTTP layer, over real sockets: requests Node's HTTP parser refuses get
 * the contract's JSON on both listeners, control characters in a query never reach a
 * route, the HTTPS listener's TLS policy as the real openssl sees it, and listing cursors
 * that cannot be forged.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { freePort } from '../../scripts/server-process.js';
import { call } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { issueOperator, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let admin: { cert: string; key: string };
let ports: Record<Listener, number>;

beforeAll(async () => {
  const statusPort = await freePort();
  t = await startTestServer(join(tempDir(), 'data'), withoutRateLimits(DEFAULT_LIMITS), { statusPort, init: { hostnames: ['127.0.0.1'] } });
  ports = { https: Number(new URL(t.url).port), status: Number(new URL(t.server.statusUrl!).port) };
  admin = await issueOperator(t, 'edges-admin', 'admin');
});
afterAll(() => t.destroy());

// ---------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------

type Listener = 'https' | 'status';

/** One HTTP answer read off the wire. */
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly json: unknown;
}

/** Splits what a server wrote into its answers (Content-Length or chunked bodies). */
function parseAnswers(data: Buffer): Answer[] {
  const answers: Answer[] = [];
  let rest = data;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`not an HTTP answer: ${JSON.stringify(rest.toString('latin1').slice(0, 200))}`);
    const [statusLine = '', ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    let at = end + 4;
    let body: Buffer;
    if (headers['content-length'] !== undefined) {
      body = rest.subarray(at, at + Number(headers['content-length']));
      at += body.length;
    } else if (headers['transfer-encoding'] === 'chunked') {
      const chunks: Buffer[] = [];
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        const size = parseInt(rest.subarray(at, lineEnd).toString('latin1'), 16);
        at = lineEnd + 2;
        if (size === 0) {
          at += 2;
          break;
        }
        chunks.push(rest.subarray(at, at + size));
        at += size + 2;
      }
      body = Buffer.concat(chunks);
    } else {
      body = rest.subarray(at);
      at = rest.length;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      json = undefined;
    }
    answers.push({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body, json });
    rest = rest.subarray(at);
  }
  return answers;
}

/** Writes raw bytes to a listener (TLS to the HTTPS one) and reads every answer until the server closes. */
async function exchange(listener: Listener, request: string | Buffer): Promise<Answer[]> {
  const socket =
    listener === 'https'
      ? tlsConnect({ host: '127.0.0.1', port: ports.https, ca: t.rootPem, servername: 'localhost' })
      : netConnect({ host: '127.0.0.1', port: ports.status });
  await new Promise<void>((resolve, reject) => socket.once(listener === 'https' ? 'secureConnect' : 'connect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  socket.write(request);
  const closed = await new Promise<boolean>((resolve) => {
    socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 5000).unref();
  });
  socket.destroy();
  expect(closed, 'the server closes the connection after an error').toBe(true);
  return parseAnswers(Buffer.concat(chunks));
}

const errorBody = (code: string) => ({ error: code, message: expect.any(String) });

describe.each(['https', 'status'] as const)('requests Node refuses, on the %s listener', (listener) => {
  it.each([
    { name: 'http/garbage-request-line', request: 'HELLO THERE\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'http/h2-preface', request: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, code: 'bad_request' },
    // What an HTTP/2 client with prior knowledge sends first: the preface, then an empty SETTINGS frame.
    { name: 'http/h2-preface-and-settings', request: Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from('000000040000000000', 'hex')]), status: 400, code: 'bad_request' },
    { name: 'http/unknown-version', request: 'GET /crl HTTP/9.9\r\nHost: localhost\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'http/space-in-target', request: 'GET /c rl HTTP/1.1\r\nHost: localhost\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'http/bare-lf', request: 'GET /crl HTTP/1.1\nHost: localhost\n\n', status: 400, code: 'bad_request' },
    { name: 'host/missing', request: 'GET /crl HTTP/1.1\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'host/missing-absolute-form', request: 'GET http://localhost/crl HTTP/1.1\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'host/twice', request: 'GET /crl HTTP/1.1\r\nHost: localhost\r\nHost: example.com\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'host/not-a-host', request: 'GET /crl HTTP/1.1\r\nHost: a b/c\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'header/nul-byte', request: 'GET /crl HTTP/1.1\r\nHost: local\u0000host\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'header/control-byte', request: 'GET /crl HTTP/1.1\r\nHost: localhost\r\nX-A: a\u0001b\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'header/space-in-name', request: 'GET /crl HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'header/too-large', request: `GET /crl HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'headers_too_large' },
    { name: 'body/length-and-chunked', request: 'POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'body/bad-length', request: 'POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n', status: 400, code: 'bad_request' },
    {
      name: 'body/bad-chunk-size',
      request: 'POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      status: 400,
      code: 'bad_request',
    },
    {
      name: 'body/chunk-extensions-too-large',
      request: `POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\n\r\n1;a=${'b'.repeat(20_000)}\r\n`,
      status: 413,
      code: 'payload_too_large',
    },
    { name: 'expect/unknown', request: 'GET /crl HTTP/1.1\r\nHost: localhost\r\nExpect: something-else\r\n\r\n', status: 400, code: 'bad_request' },
    { name: 'method/connect', request: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', status: 405, code: 'method_not_allowed' },
  ])('$name -> $status $code', async ({ request, status, code }) => {
    const answers = await exchange(listener, request);
    expect(answers).toHaveLength(1);
    expect(answers[0]!.status).toBe(status);
    expect(answers[0]!.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(answers[0]!.json).toEqual(errorBody(code));
  });

  it('HTTP/1.0 without Host is still answered (Host is required from HTTP/1.1 on)', async () => {
    const answers = await exchange(listener, 'GET /crl HTTP/1.0\r\n\r\n');
    expect(answers.map((answer) => answer.status)).toEqual([200]);
    expect(answers[0]!.headers['content-type']).toBe('application/pkix-crl');
  });

  it.each([
    { name: 'pipeline/then-garbage', rest: 'GARBAGE\r\n\r\n', statuses: [200, 400], code: 'bad_request' },
    { name: 'pipeline/two-then-garbage', rest: 'GET /crl HTTP/1.1\r\nHost: localhost\r\n\r\nGARBAGE\r\n\r\n', statuses: [200, 200, 400], code: 'bad_request' },
    { name: 'pipeline/then-no-host', rest: 'GET /crl HTTP/1.1\r\n\r\n', statuses: [200, 400], code: 'bad_request' },
    { name: 'pipeline/then-connect', rest: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', statuses: [200, 405], code: 'method_not_allowed' },
  ])('$name: the earlier request is answered first, then the error', async ({ rest, statuses, code }) => {
    const answers = await exchange(listener, `GET /crl HTTP/1.1\r\nHost: localhost\r\n\r\n${rest}`);
    expect(answers.map((answer) => answer.status)).toEqual(statuses);
    for (const answer of answers.slice(0, -1)) expect(answer.headers['content-type']).toBe('application/pkix-crl');
    expect(answers.at(-1)!.json).toEqual(errorBody(code));
  });

  it('an OCSP path refused for its Host gets an OCSP malformedRequest, as OCSP clients read only OCSP', async () => {
    const answers = await exchange(listener, 'GET /ocsp/MAA= HTTP/1.1\r\n\r\n');
    expect(answers).toHaveLength(1);
    expect(answers[0]!.headers['content-type']).toBe('application/ocsp-response');
    expect(answers[0]!.body.toString('hex')).toBe('30030a0101'); // OCSPResponse { responseStatus malformedRequest(1) }
  });
});

// ---------------------------------------------------------------------------------------
// Control characters in the query
// ---------------------------------------------------------------------------------------

describe('control characters in query parameters', () => {
  const asAdmin = (path: string) => call(`${t.url}${path}`, { ca: t.rootPem, ...admin });
  const listings = () => {
    const store = t.server.instance.store;
    return [vi.spyOn(store, 'listDevices'), vi.spyOn(store, 'listTokens'), vi.spyOn(store, 'listAudit')];
  };

  const cases = ['%00', '%0a', '%0D', '%09', '%1f', '%7f', '%7F'].flatMap((control) =>
    [
      ['/v1/admin/devices', 'q'],
      ['/v1/admin/devices', 'status'],
      ['/v1/admin/devices', 'cursor'],
      ['/v1/admin/tokens', 'label'],
      ['/v1/admin/tokens', 'status'],
      ['/v1/admin/tokens', 'cursor'],
      ['/v1/admin/audit', 'since'],
      ['/v1/admin/audit', 'cursor'],
    ].map(([path, name]) => ({ name: `${path!.split('/').at(-1)}/${name}=${control}`, path: `${path}?${name}=ab${control}cd` })),
  );

  it.each(cases)('$name -> 400 bad_request, and no listing reaches the store', async ({ path }) => {
    const spies = listings();
    try {
      const response = await asAdmin(path);
      expect(response.status).toBe(400);
      expect(response.body).toEqual(errorBody('bad_request'));
      expect(response.body.message).toMatch(/control character/);
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it.each([
    { name: 'control/in-name', path: '/v1/admin/devices?q%00=x' },
    { name: 'control/second-of-repeated', path: '/v1/admin/devices?status=active&status=act%00ive' },
    { name: 'control/with-other-parameters', path: '/v1/admin/tokens?limit=2&label=line%00-3' },
  ])('$name -> 400 bad_request', async ({ path }) => {
    const response = await asAdmin(path);
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBody('bad_request'));
  });

  it('on an operator route, authentication comes first: no client certificate gets 401, whatever the query', async () => {
    const response = await call(`${t.url}/v1/admin/devices?q=%00`, { ca: t.rootPem });
    expect(response.status).toBe(401);
    expect(response.body).toEqual(errorBody('client_cert_required'));
  });

  it('printable text still reaches the store (the check refuses only controls)', async () => {
    const spies = listings();
    try {
      const response = await asAdmin('/v1/admin/devices?q=caf%C3%A9%20%2B%25_x');
      expect(response.status).toBe(200);
      expect(spies[0]).toHaveBeenCalledWith(expect.objectContaining({ q: 'café +%_x' }));
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it('the status listener refuses them too: JSON on /crl, OCSP malformedRequest on /ocsp', async () => {
    const [json] = await exchange('status', 'GET /crl?x=%00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(json!.status).toBe(400);
    expect(json!.json).toEqual(errorBody('bad_request'));
    const [ocsp] = await exchange('status', 'GET /ocsp/MAA=?x=%1f HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(ocsp!.headers['content-type']).toBe('application/ocsp-response');
    expect(ocsp!.body.toString('hex')).toBe('30030a0101');
  });
});

// A name or id in the path is decoded by the router: a control character there must not
// reach the store either (PostgreSQL answers a NUL with an error, which was a 500).
describe('control characters in path parameters', () => {
  const cases = ['%00', '%0a', '%1f', '%7f'].flatMap((control) =>
    [
      { route: 'devices/show', method: 'GET', path: `/v1/admin/devices/ab${control}cd` },
      { route: 'devices/revoke', method: 'POST', path: `/v1/admin/devices/ab${control}cd/revoke` },
      { route: 'tokens/revoke', method: 'POST', path: `/v1/admin/tokens/ab${control}cd/revoke` },
      { route: 'certificates/show', method: 'GET', path: `/v1/admin/certificates/ab${control}cd` },
      { route: 'certificates/revoke', method: 'POST', path: `/v1/admin/certificates/ab${control}cd/revoke` },
      { route: 'console/devices/show', method: 'GET', path: `/console/api/devices/ab${control}cd` },
      { route: 'console/devices/revoke', method: 'POST', path: `/console/api/devices/ab${control}cd/revoke` },
    ].map((each) => ({ ...each, name: `${each.route} ${control}` })),
  );

  it.each(cases)('$name -> 400 bad_request', async ({ method, path }) => {
    const body = method === 'POST' ? { json: path.startsWith('/console/') ? { reason: 'unspecified' } : {} } : {};
    const headers = { 'x-imprint-console': '1', origin: new URL(t.url).origin };
    const response = await call(`${t.url}${path}`, { ca: t.rootPem, ...admin, method, headers, ...body });
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect(response.body).toEqual(errorBody('bad_request'));
  });

  // The same holds for a label in a JSON body, which JSON's \u0000 decodes into a NUL.
  it.each([
    { route: 'admin', path: '/v1/admin/tokens/revoke' },
    { route: 'console', path: '/console/api/batches/revoke' },
  ])('a batch label with a control character -> 400 bad_request ($route)', async ({ path }) => {
    const headers = { 'x-imprint-console': '1', origin: new URL(t.url).origin };
    for (const label of ['line\u00003', 'line\n3', 'line-3\u007f']) {
      const response = await call(`${t.url}${path}`, { ca: t.rootPem, ...admin, headers, json: { label } });
      expect(response.status, JSON.stringify(response.body)).toBe(400);
      expect(response.body).toEqual(errorBody('bad_request'));
    }
  });

  it('a printable id still reaches the store: 404 for one that is not there', async () => {
    const response = await call(`${t.url}/v1/admin/devices/caf%C3%A9-%20x`, { ca: t.rootPem, ...admin });
    expect(response.status).toBe(404);
    expect(response.body).toEqual(errorBody('not_found'));
  });
});

// ---------------------------------------------------------------------------------------
// TLS policy, as the real openssl sees it
// ---------------------------------------------------------------------------------------

/**
 * Runs `openssl s_client` against the HTTPS listener. Without `whenConnected` its input
 * ends at once (a handshake and nothing else); with it, the callback writes to its input
 * once the handshake is done, and the input ends when the callback's promise does.
 */
async function sClient(args: string[], whenConnected?: (input: NodeJS.WritableStream) => Promise<void>): Promise<{ code: number | null; output: string }> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${ports.https}`, '-servername', 'localhost', '-CAfile', t.rootPath, ...args]);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill(), 20_000);
  try {
    if (whenConnected) {
      const connected = await Promise.race([
        new Promise<boolean>((resolve) => child.stdout.on('data', () => /Verify return code/.test(output) && resolve(true))),
        exited.then(() => false),
      ]);
      if (connected) await Promise.race([whenConnected(child.stdin), exited]);
    }
    child.stdin.end();
    return { code: await exited, output };
  } finally {
    clearTimeout(killer);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('TLS policy', () => {
  it.each([
    { name: 'tls1.2/ecdhe-ecdsa-aes128-gcm', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
    { name: 'tls1.2/ecdhe-ecdsa-aes256-gcm', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384'], protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384' },
    { name: 'tls1.2/ecdhe-ecdsa-chacha20', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305'], protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305' },
    { name: 'tls1.3/default', args: ['-tls1_3'], protocol: 'TLSv1.3', cipher: 'TLS_' },
    { name: 'tls1.3/aes256-gcm', args: ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384'], protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    { name: 'tls1.3/chacha20', args: ['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'], protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256' },
  ])('$name is accepted', async ({ args, protocol, cipher }) => {
    const run = await sClient(args);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(new RegExp(`New, ${protocol}, Cipher is ${cipher}`));
    expect(run.output).toContain('Verify return code: 0 (ok)');
  });

  it.each([
    { name: 'tls1.2/cbc-sha1', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA'] },
    { name: 'tls1.2/cbc-sha1-aes256', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-SHA'] },
    { name: 'tls1.2/cbc-sha256', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256'] },
    { name: 'tls1.2/cbc-sha384', args: ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-SHA384'] },
    { name: 'tls1.2/rsa-key-exchange-gcm', args: ['-tls1_2', '-cipher', 'AES128-GCM-SHA256:AES256-GCM-SHA384'] },
    { name: 'tls1.2/no-forward-secrecy-cbc', args: ['-tls1_2', '-cipher', 'AES128-SHA:AES256-SHA'] },
  ])('$name fails the handshake', async ({ args }) => {
    const run = await sClient(args);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/alert handshake failure/);
    expect(run.output).toMatch(/New, \(NONE\), Cipher is \(NONE\)/);
  });

  it.each([
    { name: 'tls1.3/x25519', args: ['-tls1_3', '-groups', 'X25519'], group: 'X25519' },
    { name: 'tls1.3/p-256', args: ['-tls1_3', '-groups', 'P-256'], group: 'prime256v1' },
    { name: 'tls1.3/p-384', args: ['-tls1_3', '-groups', 'P-384'], group: 'secp384r1' },
    { name: 'tls1.2/p-256', args: ['-tls1_2', '-groups', 'P-256'], group: 'prime256v1' },
  ])('key exchange $name is accepted', async ({ args, group }) => {
    const run = await sClient(args);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(new RegExp(`(Server Temp Key|Negotiated TLS1.3 group): (ECDH, )?${group}`));
  });

  // A finite-field group costs the server one modular exponentiation per key share: ~130 ms
  // of CPU for ffdhe8192 on OpenSSL 3.0, against ~0.1 ms for X25519.
  it.each(['ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'])('key exchange tls1.3/%s fails the handshake', async (group) => {
    const run = await sClient(['-tls1_3', '-groups', group]);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/alert handshake failure/);
  });

  it.each([
    { name: 'tls1.1', args: ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'] },
    { name: 'tls1.0', args: ['-tls1', '-cipher', 'DEFAULT:@SECLEVEL=0'] },
  ])('$name is refused by the server (the client is let to try it)', async ({ args }) => {
    const run = await sClient(args);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/alert protocol version/);
  });

  it('a client-initiated renegotiation (s_client "R") is refused, and the server keeps serving', async () => {
    const run = await sClient(['-tls1_2'], async (input) => {
      input.write('R\n');
      await sleep(2000);
      // Reached only when the renegotiation went through: this request would then be answered.
      input.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      await sleep(1000);
    });
    expect(run.output).toContain('RENEGOTIATING');
    expect(run.output).toMatch(/no renegotiation/);
    expect(run.output).not.toContain('HTTP/1.1 200');
    expect(run.code).not.toBe(0);
    expect((await call(`${t.url}/healthz`, { ca: t.rootPem })).status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------------------

describe('listing cursors', () => {
  const asAdmin = (path: string) => call(`${t.url}${path}`, { ca: t.rootPem, ...admin });
  const pagePath = (cursor?: string) => `/v1/admin/tokens?label=edges-pager&limit=2${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
  let minted: string[];
  let firstCursor: string;

  beforeAll(async () => {
    minted = [];
    for (let i = 0; i < 5; i++) minted.push((await t.mintToken({ label: 'edges-pager' })).id);
    const first = await asAdmin(pagePath());
    expect(first.status).toBe(200);
    firstCursor = first.body.nextCursor;
  });

  it('a cursor from one page gets the next, and the pages hold every token once', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await asAdmin(pagePath(cursor));
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((token: { id: string }) => token.id));
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(minted);
    expect(firstCursor).toMatch(/^[A-Za-z0-9_-]{34}$/);
  });

  /** A cursor made by another data directory's store, for a row that exists here too. */
  async function foreignCursor(): Promise<string> {
    const path = join(tempDir(), 'imprint.db');
    const store = SqliteStore.open(path);
    try {
      const db = new Database(path);
      const insert = db.prepare(`INSERT INTO tokens (id, hash, label, device_id, created_at, created_by, expires_at)
                                 VALUES (?, ?, 'edges-pager', NULL, ?, 'cli:test', ?)`);
      for (let i = 0; i < 3; i++) insert.run(`tok_foreign_${i}`, randomBytes(32), Date.now(), Date.now() + 3_600_000);
      db.close();
      return (await store.listTokens({ label: 'edges-pager', limit: 1, now: new Date() })).nextCursor!;
    } finally {
      await store.close();
    }
  }

  const flipByte = (cursor: string, index: number) => {
    const bytes = Buffer.from(cursor, 'base64url');
    bytes[index]! ^= 0x80;
    return bytes.toString('base64url');
  };

  it.each([
    { name: 'cursor/flipped-first-byte', cursor: () => flipByte(firstCursor, 0) },
    { name: 'cursor/flipped-position-byte', cursor: () => flipByte(firstCursor, 8) },
    { name: 'cursor/flipped-last-byte', cursor: () => flipByte(firstCursor, 24) },
    { name: 'cursor/hand-made-r1', cursor: () => Buffer.from('r1').toString('base64url') },
    { name: 'cursor/hand-made-r2', cursor: () => Buffer.from('r2').toString('base64url') },
    { name: 'cursor/another-data-directory', cursor: foreignCursor },
  ])('$name -> 400 bad_request', async ({ cursor }) => {
    const response = await asAdmin(pagePath(await cursor()));
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'bad_request', message: 'cursor is not one this server handed out' });
  });

  it('a token listing cursor is refused by the device listing', async () => {
    const response = await asAdmin(`/v1/admin/devices?cursor=${firstCursor}`);
    expect(response.status).toBe(400);
    expect(response.body).toEqual(errorBody('bad_request'));
  });
});
