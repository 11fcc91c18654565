/**
 * Hostile input, over the real listener: a CSR corpus, property-based fuzzing of the CSR
 * parser and of POST /v1/enroll, malformed HTTP, and TLS client certificates that must not
 * get in. Every input must get a 4xx JSON error with a stable code (or, on the OCSP
 * endpoints, an OCSP error response), leave the database unchanged but for audit events,
 * and leave the server serving. The suite ends with a summary line and fails on any 5xx.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as der from '../../src/asn1/der.js';
import { MAX_CSR_DER_BYTES, parseCsr } from '../../src/ca/csr.js';
import { ERROR_STATUS, ImprintError } from '../../src/errors.js';
import { attribute, forgeCsr, OIDS, pemOf, sharedKey } from '../helpers/csr-forge.js';
import { snapshot } from '../helpers/database.js';
import { call, type Response } from '../helpers/https.js';
import { openssl, tempDir } from '../helpers/openssl.js';
import { enrollDevice, issueOperator, signedButNotRecorded, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let token: string;
let admin: { cert: string; key: string };
const tally = { tried: 0, handled: 0, serverErrors: [] as string[] };

beforeAll(async () => {
  t = await startTestServer();
  token = (await t.mintToken()).token;
  admin = await issueOperator(t, 'hostile-admin', 'admin');
});
afterAll(async () => {
  console.log(`hostile inputs: ${tally.tried} tried, ${tally.handled} handled, ${tally.serverErrors.length} server errors`);
  await t.destroy();
  expect(tally.serverErrors).toEqual([]);
  expect(tally.handled).toBe(tally.tried);
});

const KNOWN_CODES = new Set(Object.keys(ERROR_STATUS));

/**
 * Sends one hostile input and checks the contract: no 5xx, a 4xx JSON error with a known
 * code (the expected one when given), the database unchanged but for audit events.
 */
async function hostile(name: string, send: () => Promise<Response>, expected?: { status?: number; code?: string | readonly string[] }): Promise<Response> {
  tally.tried++;
  const before = snapshot(t.dataDir).state;
  const response = await send();
  if (response.status >= 500) tally.serverErrors.push(`${name}: ${response.status} ${response.raw.toString().slice(0, 200)}`);
  if (response.status === 201) token = (await t.mintToken()).token; // so one failure does not hide the rest
  expect(response.status, name).toBeGreaterThanOrEqual(400);
  expect(response.status, name).toBeLessThan(500);
  expect(String(response.headers['content-type']), name).toMatch(/^application\/json/);
  expect(KNOWN_CODES.has(response.body.error), `${name}: ${JSON.stringify(response.body)}`).toBe(true);
  expect(typeof response.body.message, name).toBe('string');
  expect(response.raw.toString(), name).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace
  if (expected?.status !== undefined) expect(response.status, name).toBe(expected.status);
  if (expected?.code !== undefined) expect([expected.code].flat(), `${name}: ${JSON.stringify(response.body)}`).toContain(response.body.error);
  expect(snapshot(t.dataDir).state, `${name} changed nothing`).toBe(before);
  tally.handled++;
  return response;
}

const enrollWith = (body: string | Buffer, headers: Record<string, string> = {}) => () =>
  call(`${t.url}/v1/enroll`, { ca: t.rootPem, body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers } });
const enrollCsr = (csr: string | Buffer) => enrollWith(JSON.stringify({ csr: Buffer.isBuffer(csr) ? csr.toString('base64') : csr }));

async function stillServing(): Promise<void> {
  expect((await call(`${t.url}/healthz`, { ca: t.rootPem })).status).toBe(200);
}

// ---------------------------------------------------------------------------------------
// The CSR corpus
// ---------------------------------------------------------------------------------------

const valid = forgeCsr({ commonNames: ['corpus-valid'] });
const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

/** An RSA SubjectPublicKeyInfo with the given modulus and exponent. */
function rsaSpki(modulus: Buffer, exponent: Buffer): Buffer {
  return der.sequence(
    der.sequence(der.objectIdentifier('1.2.840.113549.1.1.1'), der.nullValue()),
    der.bitString(der.sequence(der.unsignedInteger(modulus), der.unsignedInteger(exponent))),
  );
}
const rsaModulus = Buffer.from(rsaKey.export({ format: 'jwk' }).n!, 'base64url');

/** A P-256 SPKI whose point is moved off the curve. */
function offCurveSpki(): Buffer {
  const spki = Buffer.from(createPublicKey(sharedKey()).export({ type: 'spki', format: 'der' }));
  spki[spki.length - 1] = spki[spki.length - 1]! ^ 0x01;
  return spki;
}

/** SEQUENCE nested `depth` times. */
const nested = (depth: number): Buffer => {
  let inner: Buffer = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) inner = der.sequence(inner);
  return inner;
};

const CORPUS: { name: string; csr: string | Buffer; code: string | readonly string[] }[] = [
  // Not DER at all.
  ...[1, 16, 100, 1000, 16_000].map((size) => ({ name: `random-bytes/${size}`, csr: randomBytes(size), code: 'csr_malformed' })),
  { name: 'random-text', csr: 'not a csr at all', code: 'csr_malformed' },
  { name: 'empty-string', csr: '', code: ['csr_malformed', 'bad_request'] },
  // Truncated DER at many cut points.
  ...[1, 2, 10, 50, 100, valid.length - 10, valid.length - 1].map((cut) => ({ name: `truncated/${cut}`, csr: valid.subarray(0, cut), code: 'csr_malformed' })),
  // PEM armour and what surrounds it.
  { name: 'pem/certificate-label', csr: pemOf(valid, 'CERTIFICATE'), code: 'csr_malformed' },
  { name: 'pem/private-key-label', csr: pemOf(valid, 'PRIVATE KEY'), code: 'csr_malformed' },
  { name: 'pem/no-end', csr: pemOf(valid).split('-----END')[0]!, code: 'csr_malformed' },
  { name: 'pem/lowercase', csr: pemOf(valid).toLowerCase(), code: 'csr_malformed' },
  { name: 'pem/trailing-garbage', csr: `${pemOf(valid)}garbage\n`, code: 'csr_malformed' },
  { name: 'pem/leading-garbage', csr: `garbage\n${pemOf(valid)}`, code: 'csr_malformed' },
  { name: 'pem/two-blocks', csr: pemOf(valid) + pemOf(valid), code: 'csr_malformed' },
  { name: 'pem/bad-base64', csr: pemOf(valid).replace(/[A-Z]/, '*'), code: 'csr_malformed' },
  { name: 'der/trailing-bytes', csr: Buffer.concat([valid, Buffer.from([0, 0])]), code: 'csr_malformed' },
  // Nested garbage.
  { name: 'nested/wrapped-in-sequence', csr: der.sequence(valid), code: 'csr_malformed' },
  { name: 'nested/4000-deep', csr: nested(4000), code: 'csr_malformed' },
  { name: 'nested/garbage-in-attributes', csr: forgeCsr({ attributes: [nested(200)] }), code: 'csr_malformed' },
  { name: 'version/1', csr: forgeCsr({ version: der.smallInteger(1) }), code: 'csr_malformed' },
  { name: 'version/huge-integer', csr: forgeCsr({ version: der.unsignedInteger(randomBytes(2000)) }), code: 'csr_malformed' },
  // Wrong OIDs.
  { name: 'oid/unknown-signature-algorithm', csr: forgeCsr({ signatureOid: '1.2.3.4.5' }), code: 'csr_signature_invalid' },
  { name: 'oid/unknown-key-algorithm', csr: forgeCsr({ spki: der.sequence(der.sequence(der.objectIdentifier('1.2.3.4')), der.bitString(randomBytes(65))) }), code: ['csr_key_unsupported', 'csr_malformed'] },
  { name: 'oid/no-common-name', csr: forgeCsr({ subject: der.sequence(der.set(der.sequence(der.objectIdentifier(OIDS.organization), der.utf8String('Acme')))) }), code: 'csr_subject_invalid' },
  { name: 'oid/huge-arc', csr: forgeCsr({ signatureOid: `1.2.${'9'.repeat(300)}` }), code: ['csr_signature_invalid', 'csr_malformed'] },
  // A signature algorithm that does not fit the key.
  { name: 'sigalg/rsa-oid-on-ec-key', csr: forgeCsr({ signatureOid: OIDS.sha256WithRsa }), code: 'csr_signature_invalid' },
  { name: 'sigalg/ecdsa-oid-on-rsa-key', csr: forgeCsr({ key: rsaKey, signatureOid: OIDS.ecdsaWithSha256 }), code: 'csr_signature_invalid' },
  { name: 'signature/empty', csr: forgeCsr({ signature: Buffer.alloc(0) }), code: ['csr_signature_invalid', 'csr_malformed'] },
  { name: 'signature/huge-integers', csr: forgeCsr({ signature: der.sequence(der.unsignedInteger(randomBytes(4000)), der.unsignedInteger(randomBytes(4000))) }), code: 'csr_signature_invalid' },
  { name: 'signature/of-another-key', csr: forgeCsr({ spki: createPublicKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey).export({ type: 'spki', format: 'der' }) }), code: 'csr_signature_invalid' },
  // Keys.
  { name: 'key/rsa-exponent-1', csr: forgeCsr({ key: rsaKey, spki: rsaSpki(rsaModulus, Buffer.from([1])) }), code: ['csr_key_unsupported', 'csr_malformed'] },
  { name: 'key/rsa-huge-modulus', csr: forgeCsr({ key: rsaKey, spki: rsaSpki(Buffer.concat([Buffer.from([0xc0]), randomBytes(2047)]), Buffer.from([1, 0, 1])) }), code: ['csr_key_unsupported', 'csr_malformed'] },
  { name: 'key/ec-point-off-curve', csr: forgeCsr({ spki: offCurveSpki() }), code: ['csr_key_unsupported', 'csr_malformed'] },
  // Size.
  {
    name: 'size/16-KiB-plus-1',
    csr: forgeCsr({ attributes: [attribute(OIDS.challengePassword, der.octetString(Buffer.alloc(MAX_CSR_DER_BYTES)))] }),
    code: 'csr_malformed',
  },
  // Thousands of small attributes or extensions within the 16 KiB cap: the parser must
  // neither crash nor crawl (the CN is invalid so that the verdict is a refusal either way).
  {
    name: 'size/thousands-of-attributes',
    csr: forgeCsr({ commonNames: ['bad cn'], attributes: Array.from({ length: 1700 }, () => attribute('2.5', der.nullValue())) }),
    code: ['csr_malformed', 'csr_subject_invalid'],
  },
  {
    name: 'size/thousands-of-extensions',
    csr: forgeCsr({
      commonNames: ['bad cn'],
      attributes: [attribute(OIDS.extensionRequest, der.sequence(...Array.from({ length: 1500 }, () => der.sequence(der.objectIdentifier('2.5'), der.octetString(Buffer.from([5, 0]))))))],
    }),
    code: ['csr_malformed', 'csr_subject_invalid'],
  },
  // The common name.
  ...[
    ['null-byte', 'sensor\u0000001'],
    ['control-characters', 'sensor\u0007\u001b[31m001'],
    ['newline', 'sensor-001\nadmin'],
    ['cyrillic-confusable', 'sеnsor-001'],
    ['fullwidth-digits', 'sensor-００１'],
    ['right-to-left-override', 'sensor-\u202e100'],
    ['sql', "x'; DROP TABLE devices;--"],
    ['path', '../../etc/passwd'],
    ['empty', ''],
    ['65-characters', `a${'b'.repeat(64)}`],
    ['leading-dot', '.hidden'],
  ].map(([name, cn]) => ({ name: `cn/${name}`, csr: forgeCsr({ commonNames: [cn!] }), code: 'csr_subject_invalid' })),
  { name: 'cn/several', csr: forgeCsr({ commonNames: ['one-001', 'two-002'] }), code: 'csr_subject_invalid' },
  { name: 'cn/none', csr: forgeCsr({ subject: der.sequence() }), code: 'csr_subject_invalid' },
  { name: 'cn/bmp-string', csr: forgeCsr({ subject: der.sequence(der.set(der.sequence(der.objectIdentifier(OIDS.commonName), der.tlv(0x1e, Buffer.from('\u0000a\u0000 \u0000b', 'latin1'))))) }), code: ['csr_subject_invalid', 'csr_malformed'] },
  { name: 'cn/integer-value', csr: forgeCsr({ subject: der.sequence(der.set(der.sequence(der.objectIdentifier(OIDS.commonName), der.smallInteger(5)))) }), code: ['csr_subject_invalid', 'csr_malformed'] },
];

describe('CSR corpus over POST /v1/enroll', () => {
  it.each(CORPUS.map((entry) => [entry.name, entry] as const))('%s', async (name, { csr, code }) => {
    await hostile(`csr/${name}`, enrollCsr(csr), { code });
    // PEM-armoured too, where the corpus entry is DER.
    if (Buffer.isBuffer(csr) && csr.length > 0) await hostile(`csr/${name}/pem`, enrollCsr(pemOf(csr)), { code });
  });

  it('the 16 KiB + 1 case really is over the cap, and the unused token still enrolls afterwards', async () => {
    const oversized = CORPUS.find((entry) => entry.name === 'size/16-KiB-plus-1')!.csr as Buffer;
    expect(oversized.length).toBeGreaterThan(MAX_CSR_DER_BYTES);
    await stillServing();
  });
});

// ---------------------------------------------------------------------------------------
// Property-based fuzzing
// ---------------------------------------------------------------------------------------

/** A mutation of a valid CSR's DER: flips, overwrites, insertions, deletions, truncation. */
const mutatedDer = fc
  .array(
    fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((mutations) => {
    let bytes = Buffer.from(valid);
    for (const mutation of mutations) {
      const at = mutation.at % Math.max(1, bytes.length);
      if (mutation.kind === 'flip') bytes[at] = bytes[at]! ^ (1 << mutation.bit);
      else if (mutation.kind === 'set') bytes[at] = mutation.value;
      else if (mutation.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(mutation.bytes), bytes.subarray(at)]);
      else if (mutation.kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.count)]);
      else bytes = bytes.subarray(0, at);
    }
    return bytes;
  });

describe('property: the CSR parser', () => {
  it('either parses a mutated CSR or refuses it with an ImprintError, never anything else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutatedDer.map((bytes) => bytes.toString('base64')), mutatedDer.map((bytes) => pemOf(bytes)), fc.string({ maxLength: 300 })), async (text) => {
        tally.tried++;
        try {
          await parseCsr(text);
        } catch (error) {
          if (!(error instanceof ImprintError) || error.status >= 500) tally.serverErrors.push(`parseCsr: ${String(error)}`);
          expect(error).toBeInstanceOf(ImprintError);
        }
        tally.handled++;
      }),
      { numRuns: 3000 },
    );
  });
});

describe('property: POST /v1/enroll', () => {
  it('answers mutated CSRs with 4xx JSON and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(mutatedDer, fc.boolean(), async (bytes, asPem) => {
        // A mutation inside the signature's slack or an ignored part may still enroll.
        const response = await hostileOrAccepted(`fuzz/csr`, enrollCsr(asPem ? pemOf(bytes) : bytes));
        if (response.status === 201) token = (await t.mintToken()).token;
      }),
      { numRuns: 150 },
    );
  });

  it('answers mutated and arbitrary JSON bodies with 4xx JSON and changes nothing', async () => {
    const validBody = JSON.stringify({ csr: pemOf(valid) });
    const mutatedBody = fc
      .tuple(fc.nat(), fc.nat({ max: 20 }), fc.string({ maxLength: 10 }))
      .map(([at, count, insert]) => {
        const cut = at % validBody.length;
        return validBody.slice(0, cut) + insert + validBody.slice(cut + count);
      });
    const arbitraryJson = fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value));
    const csrOfWrongType = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.dictionary(fc.string(), fc.string())).map((csr) => JSON.stringify({ csr }));
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutatedBody, arbitraryJson, csrOfWrongType, fc.string({ maxLength: 200 })), async (body) => {
        const response = await hostileOrAccepted('fuzz/json', enrollWith(body));
        if (response.status === 201) token = (await t.mintToken()).token;
      }),
      { numRuns: 200 },
    );
  });
});

/** Like hostile(), except that a mutation which still makes a valid request may enroll. */
async function hostileOrAccepted(name: string, send: () => Promise<Response>): Promise<Response> {
  const before = snapshot(t.dataDir).state;
  const response = await send();
  if (response.status === 201) {
    tally.tried++;
    tally.handled++;
    return response;
  }
  expect(snapshot(t.dataDir).state).toBe(before);
  return hostile(name, () => Promise.resolve(response));
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/** Writes raw bytes on a TLS connection and parses what comes back. */
async function raw(request: string | Buffer): Promise<Response> {
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(t.url).port), ca: t.rootPem, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(request);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    setTimeout(() => socket.end(), 2000).unref();
  });
  const text = Buffer.concat(chunks).toString();
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  const bodyText = rest.join('\r\n\r\n');
  let body: any = bodyText;
  try {
    body = JSON.parse(bodyText);
  } catch {
    // not JSON
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body, raw: Buffer.from(text) };
}

describe('HTTP', () => {
  const deep = '['.repeat(20_000) + ']'.repeat(20_000);
  it.each([
    { name: 'json/malformed', body: '{"csr": ', code: 'bad_request' },
    { name: 'json/trailing-comma', body: '{"csr": "x",}', code: 'bad_request' },
    { name: 'json/empty-body', body: '', code: 'bad_request' },
    { name: 'json/array', body: '[]', code: 'bad_request' },
    { name: 'json/deeply-nested', body: deep, code: ['bad_request', 'payload_too_large'] },
    { name: 'json/proto-pollution', body: '{"__proto__": {"admin": true}, "csr": "x"}', code: 'bad_request' },
    { name: 'json/constructor-pollution', body: '{"constructor": {"prototype": {"admin": true}}, "csr": "x"}', code: 'bad_request' },
    { name: 'json/extra-field', body: JSON.stringify({ csr: pemOf(valid), admin: true }), code: 'bad_request' },
    { name: 'json/invalid-utf8', body: Buffer.concat([Buffer.from('{"csr": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]), code: ['bad_request', 'csr_malformed'] },
    { name: 'json/giant-body', body: JSON.stringify({ csr: 'A'.repeat(100_000) }), code: 'payload_too_large' },
    { name: 'json/csr-too-long-for-schema', body: JSON.stringify({ csr: 'A'.repeat(40_000) }), code: ['bad_request', 'csr_malformed'] },
  ])('$name', async ({ name, body, code }) => {
    await hostile(`http/${name}`, enrollWith(body), { code });
  });

  it.each([
    { name: 'content-type/text-plain', type: 'text/plain', code: 'unsupported_media_type' },
    { name: 'content-type/form', type: 'application/x-www-form-urlencoded', code: 'unsupported_media_type' },
    { name: 'content-type/multipart', type: 'multipart/form-data; boundary=x', code: 'unsupported_media_type' },
    { name: 'content-type/garbage', type: '¿¿¿', code: ['unsupported_media_type', 'bad_request'] },
    { name: 'content-type/xml', type: 'application/xml', code: 'unsupported_media_type' },
  ])('$name', async ({ name, type, code }) => {
    await hostile(`http/${name}`, enrollWith(JSON.stringify({ csr: 'x' }), { 'content-type': type }), { code });
  });

  it('missing content type', async () => {
    await hostile('http/content-type/missing', () => raw(`POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"csr":"x"}`), {
      code: ['unsupported_media_type', 'bad_request'],
    });
  });

  it.each([
    { name: 'authorization/none', headers: { authorization: '' }, code: 'token_missing' },
    { name: 'authorization/basic', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' }, code: 'token_missing' },
    { name: 'authorization/huge-token', headers: { authorization: `Bearer imp_${'A'.repeat(7000)}` }, code: 'token_invalid' },
    { name: 'authorization/sql', headers: { authorization: "Bearer imp_' OR 1=1 --" }, code: ['token_invalid', 'token_missing'] },
    { name: 'authorization/unicode', headers: { authorization: 'Bearer imp_ünïcödé' }, code: 'token_invalid' },
  ])('$name', async ({ name, headers, code }) => {
    await hostile(`http/${name}`, enrollWith(JSON.stringify({ csr: pemOf(valid) }), headers), { code });
  });

  it.each([
    { name: 'headers/giant', request: `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, code: 'headers_too_large' },
    { name: 'headers/thousands', request: `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: 1\r\n`).join('')}\r\n`, code: ['headers_too_large', 'bad_request'] },
    { name: 'http/garbage-request-line', request: 'HELLO THERE\r\n\r\n', code: 'bad_request' },
    { name: 'http/smuggling', request: 'POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', code: 'bad_request' },
    { name: 'http/bad-chunked', request: 'POST /v1/enroll HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n', code: 'bad_request' },
    { name: 'http/null-in-header', request: 'GET /healthz HTTP/1.1\r\nHost: local\u0000host\r\n\r\n', code: 'bad_request' },
    { name: 'http/absolute-form-elsewhere', request: 'GET http://example.com/v1/admin/devices HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n', code: ['client_cert_required', 'not_found', 'bad_request'] },
  ])('$name', async ({ name, request, code }) => {
    await hostile(name, () => raw(request), { code });
  });

  it.each([
    { name: 'route/unknown', method: 'GET', path: '/v1/nothing', code: 'not_found' },
    { name: 'route/dot-segments', method: 'GET', path: '/v1/../../etc/passwd', code: 'not_found' },
    { name: 'route/encoded-null', method: 'GET', path: '/v1/admin/devices/%00', code: ['client_cert_required', 'bad_request', 'not_found'] },
    { name: 'route/bad-percent-encoding', method: 'GET', path: '/v1/admin/devices/%E0%A4%A', code: ['bad_request', 'client_cert_required', 'not_found'] },
    { name: 'route/very-long', method: 'GET', path: `/v1/admin/devices/${'a'.repeat(5000)}`, code: ['client_cert_required', 'not_found', 'bad_request'] },
    { name: 'method/put-enroll', method: 'PUT', path: '/v1/enroll', code: ['not_found', 'method_not_allowed'] },
    { name: 'method/delete-device', method: 'DELETE', path: '/v1/device', code: ['not_found', 'method_not_allowed'] },
    { name: 'method/get-enroll', method: 'GET', path: '/v1/enroll', code: ['not_found', 'method_not_allowed'] },
    { name: 'method/propfind', method: 'PROPFIND', path: '/', code: ['not_found', 'method_not_allowed', 'bad_request'] },
  ])('$name', async ({ name, method, path, code }) => {
    await hostile(`http/${name}`, () => call(`${t.url}${path}`, { ca: t.rootPem, method }), { code });
  });

  it.each([
    { name: 'limit/negative', query: 'limit=-1' },
    { name: 'limit/huge', query: 'limit=1e309' },
    { name: 'limit/text', query: 'limit=ten' },
    { name: 'limit/repeated', query: 'limit=1&limit=2' },
    { name: 'status/repeated', query: 'status=active&status=revoked' },
    { name: 'cursor/garbage', query: 'cursor=%F0%9F%98%80' },
    { name: 'cursor/forged', query: `cursor=${Buffer.from('{"rowid":-1}').toString('base64url')}` },
    { name: 'q/very-long', query: `q=${'x'.repeat(5000)}` },
    { name: 'unknown-parameter', query: 'debug=true' },
  ])('admin query $name', async ({ name, query }) => {
    await hostile(`admin/${name}`, () => call(`${t.url}/v1/admin/devices?${query}`, { ca: t.rootPem, ...admin }), { code: 'bad_request' });
  });

  it.each([
    { name: 'reason/unknown', body: { reason: 'boredom' }, code: 'bad_request' },
    { name: 'reason/number', body: { reason: 1 }, code: 'bad_request' },
    { name: 'reason/prototype', body: { reason: '__proto__' }, code: 'bad_request' },
    { name: 'tokens/count-zero', body: { count: 0 }, code: 'bad_request', path: '/v1/admin/tokens' },
    { name: 'tokens/count-huge', body: { count: 1e9 }, code: 'bad_request', path: '/v1/admin/tokens' },
    { name: 'tokens/count-float', body: { count: 1.5 }, code: 'bad_request', path: '/v1/admin/tokens' },
    { name: 'tokens/ttl-negative', body: { ttlSeconds: -5 }, code: 'bad_request', path: '/v1/admin/tokens' },
    { name: 'tokens/bad-device-id', body: { deviceIds: ['bad id'] }, code: 'bad_request', path: '/v1/admin/tokens' },
    { name: 'tokens/label-object', body: { label: { $ne: null } }, code: 'bad_request', path: '/v1/admin/tokens' },
  ])('admin body $name', async ({ name, body, code, path }) => {
    const device = (await t.server.instance.fleet.listDevices({ limit: 1 })).items[0]?.id ?? 'none';
    await hostile(`admin/${name}`, () => call(`${t.url}${path ?? `/v1/admin/devices/${device}/revoke`}`, { ca: t.rootPem, json: body, ...admin }), { code });
  });

  it('OCSP: garbage and bad base64 get an OCSP malformedRequest, never a 5xx', async () => {
    const ocspInputs: { name: string; send: () => Promise<Response> }[] = [
      ...['not*base64', '%%%', 'AAAA', Buffer.from(randomBytes(300)).toString('base64url'), `${'A'.repeat(2000)}`].map((path) => ({
        name: `ocsp/get/${path.slice(0, 12)}`,
        send: () => call(`${t.url}/ocsp/${path}`, { ca: t.rootPem }),
      })),
      ...[Buffer.alloc(0), randomBytes(50), nested(3000), Buffer.from('30820000', 'hex')].map((body, i) => ({
        name: `ocsp/post/${i}`,
        send: () => call(`${t.url}/ocsp`, { ca: t.rootPem, body, headers: { 'content-type': 'application/ocsp-request' } }),
      })),
    ];
    for (const { name, send } of ocspInputs) {
      tally.tried++;
      const response = await send();
      if (response.status >= 500) tally.serverErrors.push(`${name}: ${response.status}`);
      expect(response.status, name).toBeLessThan(500);
      if (response.status === 200) {
        expect(response.headers['content-type'], name).toBe('application/ocsp-response');
        const dir = tempDir();
        const file = join(dir, 'response.der');
        writeFileSync(file, response.raw);
        expect(openssl(['asn1parse', '-inform', 'DER', '-in', file]), name).toMatch(/ENUMERATED\s+:01/);
      } else {
        expect(KNOWN_CODES.has(response.body.error), name).toBe(true);
      }
      tally.handled++;
    }
    await stillServing();
  });
});

// ---------------------------------------------------------------------------------------
// TLS client certificates that must not get in
// ---------------------------------------------------------------------------------------

describe('TLS client certificates', () => {
  let foreign: { cert: string; key: string };
  let issuerIdentity: { cert: string; key: string };
  let serverIdentity: { cert: string; key: string };
  let revoked: { cert: string; key: string };
  let expired: { cert: string; key: string };
  let notYetValid: { cert: string; key: string };

  beforeAll(async () => {
    // Another CA entirely, made by openssl: a CA and a clientAuth leaf with the same CN as a real device.
    const dir = tempDir();
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=imprint Issuing CA', '-days', '2']);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', '/CN=tls-victim']);
    const extensions = join(dir, 'ext.cnf');
    writeFileSync(extensions, 'extendedKeyUsage=clientAuth\n');
    openssl(['x509', '-req', '-in', join(dir, 'leaf.csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', extensions, '-out', join(dir, 'leaf.pem')]);
    foreign = { cert: readFileSync(join(dir, 'leaf.pem'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') };

    issuerIdentity = { cert: readFileSync(join(t.dataDir, 'ca/issuer.pem'), 'utf8'), key: readFileSync(join(t.dataDir, 'ca/issuer.key'), 'utf8') };
    serverIdentity = { cert: readFileSync(join(t.dataDir, 'tls/server.pem'), 'utf8'), key: readFileSync(join(t.dataDir, 'tls/server.key'), 'utf8') };
    expired = await signedButNotRecorded(t, 'tls-expired', -3 * 86_400_000, -86_400_000);
    notYetValid = await signedButNotRecorded(t, 'tls-future', 86_400_000, 3 * 86_400_000);

    const victim = await enrollDevice(t, 'tls-victim');
    expect(victim.response.status).toBe(201);
    await t.server.instance.fleet.revokeDevice('tls-victim', 'keyCompromise', { actor: 'cli:test', role: 'admin' });
    revoked = { cert: victim.cert, key: victim.key.privateKeyPem };
  });

  it.each([
    { name: 'another-ca', who: () => foreign, code: 'client_cert_invalid' },
    { name: 'expired', who: () => expired, code: 'client_cert_invalid' },
    { name: 'not-yet-valid', who: () => notYetValid, code: 'client_cert_invalid' },
    { name: 'server-auth-only', who: () => serverIdentity, code: 'client_cert_invalid' },
    { name: 'ca-certificate', who: () => issuerIdentity, code: 'client_cert_invalid' },
    { name: 'revoked', who: () => revoked, code: ['device_revoked', 'client_cert_invalid'] },
  ])('$name is refused on device and operator routes', async ({ name, who, code }) => {
    for (const path of ['/v1/device', '/v1/admin/devices']) {
      const response = await hostile(`tls/${name}${path}`, () => call(`${t.url}${path}`, { ca: t.rootPem, ...who() }));
      expect([401, 403]).toContain(response.status);
      if (path === '/v1/device') expect([code].flat()).toContain(response.body.error);
    }
    const renew = await hostile(`tls/${name}/renew`, () => call(`${t.url}/v1/renew`, { ca: t.rootPem, json: { csr: pemOf(forgeCsr({ commonNames: ['tls-victim'] })) }, ...who() }));
    expect([401, 403]).toContain(renew.status);
    await stillServing();
  });
});
