/**
 * The OCSP fast path (src/http/ocsp-fast-path.ts) under attack, on a real server's two
 * listeners over raw sockets: whatever it answers is what the Fastify route answers for the
 * same request (a query string sends a request to the route instead), pipelined answers
 * come back whole and in order, a kept answer turns revoked as soon as its certificate
 * does, and truncated, mutated or nonce-laden DER is an OCSP answer, never a 5xx or a
 * dead connection.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { freePort } from '../../scripts/server-process.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { enrollDevice, startTestServer, type TestServer } from '../helpers/server.js';

const work = tempDir();
let t: TestServer;
let ports: { http: number; https: number };
/** A nonce-less request about an enrolled device (kept answers), and one about a serial never issued. */
let known: Buffer;
let unknownSerial: Buffer;
let deviceId: string;

beforeAll(async () => {
  t = await startTestServer(join(work, 'data'), withoutRateLimits(DEFAULT_LIMITS), { statusPort: await freePort() });
  ports = { http: Number(new URL(t.server.statusUrl!).port), https: Number(new URL(t.url).port) };
  const device = await enrollDevice(t, 'fast-path-attacks-1');
  deviceId = device.id;
  writeFileSync(join(work, 'device.pem'), device.cert);
  known = ocspRequest(['-cert', join(work, 'device.pem'), '-no_nonce']);
  unknownSerial = ocspRequest(['-serial', '0x0123456789', '-no_nonce']);
});
afterAll(() => t.destroy());

function ocspRequest(target: string[]): Buffer {
  const file = join(work, `request-${Math.random()}.der`);
  execFileSync('openssl', ['ocsp', '-issuer', t.issuerPath, ...target, '-reqout', file], { stdio: 'ignore' });
  return readFileSync(file);
}

/** Writes the bytes on a new connection to a listener and reads until it closes (or `waitMs` pass). */
async function exchange(listener: 'http' | 'https', bytes: Buffer, waitMs = 2000): Promise<string> {
  const socket: Socket =
    listener === 'https' ? tlsConnect({ host: '127.0.0.1', port: ports.https, rejectUnauthorized: false }) : netConnect({ host: '127.0.0.1', port: ports.http });
  socket.on('error', () => undefined);
  await once(socket, listener === 'https' ? 'secureConnect' : 'connect');
  const data: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => data.push(chunk));
  socket.write(bytes);
  await Promise.race([once(socket, 'close'), new Promise((resolve) => setTimeout(resolve, waitMs))]);
  socket.destroy();
  return Buffer.concat(data).toString('latin1');
}

/**
 * Each answer's status line, its headers (in any order, names in lower case) and body, without
 * what differs between any two answers (date, request id, keep-alive's timeout).
 */
const comparable = (answers: string) =>
  answers.split(/(?=HTTP\/1\.1 \d{3} )/).map((answer) => {
    const end = answer.indexOf('\r\n\r\n');
    const [status, ...headers] = answer.slice(0, end < 0 ? answer.length : end).split('\r\n');
    const kept = headers.map((line) => line.replace(/^[^:]+/, (name) => name.toLowerCase())).filter((line) => !/^(date|x-request-id|keep-alive):/.test(line));
    return { status, headers: kept.sort(), body: end < 0 ? '' : Buffer.from(answer.slice(end + 4), 'latin1').toString('hex') };
  });

/** The same request with a query string on its URL, which the fast path leaves to the route. */
const toRoute = (request: Buffer) => Buffer.from(request.toString('latin1').replace(/^(\S+ \S+?)( HTTP\/1\.\d)/, (_m, start: string, version: string) => `${start}?${version}`), 'latin1');

const headOf = (lines: string[]) => Buffer.from(lines.map((line) => `${line}\r\n`).join('') + '\r\n', 'latin1');
const post = (lines: string[], body: Buffer) => Buffer.concat([headOf(['POST /ocsp HTTP/1.1', ...lines]), body]);
const plainPost = (body: Buffer, extra: string[] = []) =>
  post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${body.length}`, ...extra, 'Connection: close'], body);
const getLine = (request: Buffer, version = '1.1') => `GET /ocsp/${encodeURIComponent(request.toString('base64'))} HTTP/${version}`;

describe('what the fast path answers is what the route answers', () => {
  const cases: { name: string; request: () => Buffer }[] = [
    { name: 'post', request: () => plainPost(known) },
    { name: 'post/http-1.0', request: () => Buffer.concat([headOf(['POST /ocsp HTTP/1.0', 'Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`]), known]) },
    { name: 'post/expect-100-continue', request: () => plainPost(known, ['Expect: 100-continue']) },
    { name: 'post/expect-other', request: () => plainPost(known, ['Expect: something-else']) },
    { name: 'post/length-leading-zero', request: () => post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: 0${known.length}`, 'Connection: close'], known) },
    { name: 'post/length-twice', request: () => plainPost(known, [`Content-Length: ${known.length}`]) },
    { name: 'post/length-list', request: () => post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}, ${known.length}`, 'Connection: close'], known) },
    { name: 'post/length-and-chunked', request: () => plainPost(known, ['Transfer-Encoding: chunked']) },
    { name: 'post/type-twice', request: () => plainPost(known, ['Content-Type: text/html']) },
    { name: 'post/empty', request: () => plainPost(Buffer.alloc(0)) },
    { name: 'post/body-longer-than-length', request: () => Buffer.concat([plainPost(known), Buffer.from('GARBAGE / HTTP/1.1\r\n\r\n')]) },
    { name: 'post/unknown-serial-unreadable', request: () => plainPost(Buffer.concat([unknownSerial.subarray(0, 10)])) },
    { name: 'host/trailing-dot', request: () => post(['Host: localhost.', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`, 'Connection: close'], known) },
    { name: 'host/port-out-of-range', request: () => post(['Host: localhost:99999', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`, 'Connection: close'], known) },
    { name: 'host/empty', request: () => post(['Host: ', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`, 'Connection: close'], known) },
    { name: 'host/twice', request: () => plainPost(known, ['Host: example.com']) },
    { name: 'get', request: () => headOf([getLine(known), 'Host: localhost', 'Connection: close']) },
    { name: 'get/unescaped', request: () => headOf([`GET /ocsp/${known.toString('base64')} HTTP/1.1`, 'Host: [::1]:8443', 'Connection: close']) },
    { name: 'get/lowercase-escapes', request: () => headOf([getLine(known).replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()), 'Host: localhost', 'Connection: close']) },
    { name: 'get/absolute-form', request: () => headOf([getLine(known).replace('GET /', 'GET http://localhost/'), 'Host: localhost', 'Connection: close']) },
    { name: 'get/http-1.0', request: () => headOf([getLine(known, '1.0'), 'Host: localhost']) },
    { name: 'get/chunked-body', request: () => Buffer.concat([headOf([getLine(known), 'Host: localhost', 'Transfer-Encoding: chunked', 'Connection: close']), Buffer.from('1\r\nx\r\n0\r\n\r\n')]) },
    { name: 'get/padding-in-the-middle', request: () => headOf([`GET /ocsp/AAAA=AAA HTTP/1.1`, 'Host: localhost', 'Connection: close']) },
    { name: 'get/too-much-padding', request: () => headOf([`GET /ocsp/AAA=%3D%3D%3D HTTP/1.1`, 'Host: localhost', 'Connection: close']) },
    { name: 'get/empty', request: () => headOf([`GET /ocsp/ HTTP/1.1`, 'Host: localhost', 'Connection: close']) },
    { name: 'get/longer-than-the-router-takes', request: () => headOf([getLine(randomBytes(2000)), 'Host: localhost', 'Connection: close']) },
  ];

  it.each(cases.flatMap((each) => (['http', 'https'] as const).map((listener) => ({ ...each, listener }))))('$listener $name', async ({ listener, request }) => {
    const fast = comparable(await exchange(listener, request()));
    const route = comparable(await exchange(listener, toRoute(request())));
    expect(fast[0]?.status).toMatch(/^HTTP\/1\.1 [1-4]\d\d /);
    expect(fast).toEqual(route);
  });
});

describe('connections', () => {
  it('thirty pipelined requests, fast and routed in turn, are all answered in order', async () => {
    const requests: Buffer[] = [];
    for (let i = 0; i < 30; i++) {
      const id = [`X-Request-Id: pipelined-${i}`];
      if (i % 3 === 0) requests.push(post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`, ...id], known));
      else if (i % 3 === 1) requests.push(toRoute(post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${known.length}`, ...id], known)));
      else requests.push(headOf([getLine(known), 'Host: localhost', ...id]));
    }
    const answers = await exchange('http', Buffer.concat(requests), 3000);
    expect([...answers.matchAll(/^x-request-id: (\S+)$/gim)].map((match) => match[1])).toEqual(requests.map((_, i) => `pipelined-${i}`));
  });

  it('bodies given up half-way, and a body trickled in, leave the server answering', async () => {
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        const socket = netConnect({ host: '127.0.0.1', port: ports.http }).on('error', () => undefined);
        await once(socket, 'connect');
        socket.write(plainPost(known).subarray(0, 100));
        await new Promise((resolve) => setTimeout(resolve, 20));
        socket.destroy();
      }),
    );
    const socket = netConnect({ host: '127.0.0.1', port: ports.http });
    await once(socket, 'connect');
    const data: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => data.push(chunk));
    const closed = once(socket, 'close');
    const request = plainPost(known);
    for (let at = 0; at < request.length; at += 50) {
      socket.write(request.subarray(at, at + 50));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await closed;
    expect(Buffer.concat(data).toString('latin1')).toMatch(/^HTTP\/1\.1 200 [\s\S]*application\/ocsp-response/);
  });
});

describe('hostile DER through the fast path', () => {
  /** The OCSPResponseStatus of an answer's body (malformedRequest is 1), read by openssl. */
  const responseStatus = (answer: string) => {
    expect(answer).toMatch(/^HTTP\/1\.1 200 [\s\S]*content-type: application\/ocsp-response/i);
    const file = join(work, `answer-${Math.random()}.der`);
    writeFileSync(file, Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1'));
    return /ENUMERATED\s+:(\d+)/.exec(openssl(['asn1parse', '-inform', 'DER', '-in', file]))![1];
  };

  it('every truncation and every one-byte change of a request is an OCSP answer', async () => {
    const bodies: Buffer[] = [];
    for (let length = 0; length < known.length; length++) bodies.push(known.subarray(0, length));
    for (let at = 0; at < known.length; at++) {
      for (const value of [0x00, 0x80, 0xff, known[at]! ^ 0x01]) {
        const changed = Buffer.from(known);
        changed[at] = value;
        bodies.push(changed);
      }
    }
    // In batches on kept-alive connections: one connection each would be hundreds of handshakes.
    for (let i = 0; i < bodies.length; i += 40) {
      const batch = bodies.slice(i, i + 40);
      const requests = batch.map((body, j) => {
        // The last asks the server to close, which ends the exchange.
        const last = j === batch.length - 1 ? ['Connection: close'] : [];
        return j % 2
          ? post(['Host: localhost', 'Content-Type: application/ocsp-request', `Content-Length: ${body.length}`, ...last], body)
          : headOf([body.length ? getLine(body) : 'GET /ocsp/AAAA HTTP/1.1', 'Host: localhost', ...last]);
      });
      const answers = await exchange('http', Buffer.concat(requests), 3000);
      expect(answers.match(/HTTP\/1\.1 200 /g)?.length, `batch ${i / 40}`).toBe(batch.length);
    }
  });

  it.each([0, 1, 16, 32, 33, 128, 1000, 3500])('a nonce of %i bytes is echoed in a signed answer', async (size) => {
    // TBSRequest with requestExtensions [2] { Extension { id-pkix-ocsp-nonce, OCTET STRING { the nonce } } }.
    const [tbs] = [known.subarray(2 + (known[1]! & 0x80 ? known[1]! & 0x7f : 0))];
    const requestList = tbs.subarray(2 + (tbs[1]! & 0x80 ? tbs[1]! & 0x7f : 0));
    const nonce = randomBytes(size);
    const extension = der.explicit(2, der.sequence(der.sequence(der.objectIdentifier('1.3.6.1.5.5.7.48.1.2'), der.octetString(der.octetString(nonce)))));
    const request = der.sequence(der.sequence(requestList, extension));
    const answer = await exchange('http', plainPost(request));
    expect(responseStatus(answer)).toBe('00');
    expect(Buffer.from(answer, 'latin1').includes(nonce)).toBe(true);
  });
});

describe('revocation', () => {
  it('a kept answer is answered revoked as soon as its certificate is revoked, by POST and by GET', async () => {
    const status = async (request: Buffer) => {
      const answer = await exchange('http', request);
      const file = join(work, `status-${Math.random()}.der`);
      writeFileSync(file, Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1'));
      return /Cert Status: (\w+)/.exec(openssl(['ocsp', '-respin', file, '-resp_text', '-noverify']))![1];
    };
    const get = () => headOf([getLine(known), 'Host: localhost', 'Connection: close']);
    expect([await status(plainPost(known)), await status(get()), await status(plainPost(known))]).toEqual(['good', 'good', 'good']);
    await t.server.instance.fleet.revokeDevice(deviceId, 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    expect([await status(plainPost(known)), await status(get())]).toEqual(['revoked', 'revoked']);
  });
});
