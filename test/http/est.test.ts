/**
 * EST (RFC 7030, RFC 8951) driven the way firmware written against stock tools does it:
 * CSRs from `openssl req -outform DER | base64`, requests with curl, answers read with
 * `openssl base64 -d | openssl pkcs7 -print_certs` and `openssl asn1parse`, and the
 * issued certificate used for mTLS afterwards.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/enrollment/tokens.js';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { curl } from '../helpers/curl.js';
import { call } from '../helpers/https.js';
import { openssl, opensslVerify, tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const execFileAsync = promisify(execFile);

let t: TestServer;
let est: string;
const work = tempDir();
beforeAll(async () => {
  t = await startTestServer();
  est = `${t.url}/.well-known/est`;
});
afterAll(async () => {
  await t.destroy();
});

/** Runs a bash pipeline in the work directory (asynchronously: the server is in this process). */
async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await execFileAsync('bash', ['-c', `set -euo pipefail\n${script}`], {
    cwd: work,
    env: { ...process.env, ROOT: t.rootPath, EST: est, ...env },
    timeout: 20_000,
  });
  return stdout;
}

let files = 0;
/** A P-256 key and base64 DER CSR made by the firmware recipe; returns the file names. */
async function makeCsr(cn: string, key?: string): Promise<{ key: string; csr: string }> {
  const n = ++files;
  const keyFile = key ?? `key-${n}.pem`;
  const newKey = key ? `-key ${keyFile}` : `-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${keyFile}`;
  await sh(`openssl req -new ${newKey} -subj "/CN=${cn}" -outform DER | base64 > csr-${n}.b64`);
  return { key: keyFile, csr: `csr-${n}.b64` };
}

/** POSTs a CSR file with curl; returns status, headers and body. */
async function postCsr(path: string, csrFile: string, auth: string[], extra: string[] = []) {
  const response = await curl([
    '--cacert', t.rootPath,
    '-D', '-',
    ...auth,
    '-H', 'Content-Type: application/pkcs10',
    '--data-binary', `@${join(work, csrFile)}`,
    ...extra,
    `${est}/${path}`,
  ]);
  const split = response.body.indexOf('\r\n\r\n');
  return { status: response.status, headers: response.body.slice(0, split).toLowerCase(), body: response.body.slice(split + 4) };
}

/** The certificate in a base64 certs-only CMS body, through openssl. */
async function printCerts(base64Body: string): Promise<string> {
  writeFileSync(join(work, 'answer.b64'), base64Body);
  return sh('openssl base64 -d -in answer.b64 | openssl pkcs7 -inform DER -print_certs');
}

const pemOf = (printed: string): string => printed.slice(printed.indexOf('-----BEGIN'));

/** GET /v1/device with a certificate and key on files, through curl. */
async function whoAmI(certFile: string, keyFile: string) {
  const response = await curl(['--cacert', t.rootPath, '--cert', join(work, certFile), '--key', join(work, keyFile), `${t.url}/v1/device`]);
  return { status: response.status, body: JSON.parse(response.body) as Record<string, unknown> };
}

describe('GET cacerts', () => {
  it('is the issuing CA and the root as base64 certs-only CMS, read by openssl pkcs7', async () => {
    const printed = await sh('curl -sS --cacert "$ROOT" "$EST/cacerts" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs');
    const subjects = [...printed.matchAll(/^subject=(.*)$/gm)].map((m) => m[1]);
    expect(subjects).toHaveLength(2);
    const issuer = openssl(['x509', '-noout', '-subject', '-in', t.issuerPath]).trim().replace(/^subject=/, '');
    const root = openssl(['x509', '-noout', '-subject', '-in', t.rootPath]).trim().replace(/^subject=/, '');
    expect(subjects).toEqual([issuer, root]);
  });

  it('says so in its headers', async () => {
    const response = await call(`${est}/cacerts`, { ca: t.rootPem });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/pkcs7-mime');
    expect(response.headers['content-transfer-encoding']).toBe('base64');
  });
});

describe('GET csrattrs', () => {
  it('asks for P-256 and ecdsa-with-SHA256, read by openssl asn1parse', async () => {
    const parsed = await sh('curl -sS --cacert "$ROOT" "$EST/csrattrs" | openssl base64 -d | openssl asn1parse -inform DER');
    expect(parsed).toMatch(/OBJECT\s+:id-ecPublicKey/);
    expect(parsed).toMatch(/OBJECT\s+:prime256v1/);
    expect(parsed).toMatch(/OBJECT\s+:ecdsa-with-SHA256/);
    const response = await call(`${est}/csrattrs`, { ca: t.rootPem });
    expect(response.headers['content-type']).toBe('application/csrattrs');
  });
});

describe('POST simpleenroll', () => {
  it('enrolls with the token as HTTP Basic password; the certificate then works for mTLS', async () => {
    const { token } = await t.mintToken();
    const { key, csr } = await makeCsr('est-basic-1');
    const printed = await sh(
      `curl -sS --fail --cacert "$ROOT" -u ":$TOKEN" -H 'Content-Type: application/pkcs10' --data-binary @${csr} "$EST/simpleenroll" ` +
        '| openssl base64 -d | openssl pkcs7 -inform DER -print_certs > est-basic-1.pem && cat est-basic-1.pem',
      { TOKEN: token },
    );
    expect(printed).toMatch(/subject=CN ?= ?est-basic-1/);
    expect(printed.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(opensslVerify(pemOf(printed), t.rootPath, t.issuerPath, ['-purpose', 'sslclient'])).toMatch(/: OK/);

    const me = await whoAmI('est-basic-1.pem', key);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ deviceId: 'est-basic-1', status: 'active' });
    const device = await t.server.instance.store.findDevice('est-basic-1');
    expect(device).toMatchObject({ enrolledVia: 'est', enrollmentLabel: null });
  });

  it('answers the content type RFC 7030 names, and 200 even for a new certificate', async () => {
    const { token } = await t.mintToken();
    const { csr } = await makeCsr('est-headers');
    const response = await postCsr('simpleenroll', csr, ['-u', `est-headers:${token}`]);
    expect(response.status).toBe(200);
    expect(response.headers).toContain('content-type: application/pkcs7-mime; smime-type=certs-only');
    expect(response.headers).toContain('content-transfer-encoding: base64');
  });

  it('takes the token as Bearer too; a retry with the same CSR gets the same certificate', async () => {
    const { token } = await t.mintToken();
    const { csr } = await makeCsr('est-bearer');
    const first = await postCsr('simpleenroll', csr, ['-H', `Authorization: Bearer ${token}`]);
    expect(first.status).toBe(200);
    const again = await postCsr('simpleenroll', csr, ['-H', `Authorization: Bearer ${token}`]);
    expect(again.status).toBe(200);
    expect(pemOf(await printCerts(again.body))).toBe(pemOf(await printCerts(first.body)));
  });

  it('accepts base64 with CRLF line breaks (RFC 8951)', async () => {
    const { token } = await t.mintToken();
    const { csr } = await makeCsr('est-crlf');
    await sh(`base64 -d ${csr} | base64 -w 64 | sed 's/$/\\r/' > crlf.b64`);
    const response = await postCsr('simpleenroll', 'crlf.b64', ['-u', `:${token}`]);
    expect(response.status).toBe(200);
  });

  it('refuses the used token with another CSR: 401 token_used with a Basic challenge', async () => {
    const { token } = await t.mintToken();
    const first = await makeCsr('est-reuse-1');
    expect((await postCsr('simpleenroll', first.csr, ['-u', `:${token}`])).status).toBe(200);
    const second = await makeCsr('est-reuse-2');
    const response = await postCsr('simpleenroll', second.csr, ['-u', `:${token}`]);
    expect(response.status).toBe(401);
    expect(response.headers).toContain('www-authenticate: basic realm="imprint"');
    expect(JSON.parse(response.body)).toMatchObject({ error: 'token_used' });
  });

  it.each([
    { name: 'auth/wrong-token', auth: ['-u', ':imp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'], code: 'token_invalid' },
    { name: 'auth/not-a-token', auth: ['-u', 'dev:secret'], code: 'token_invalid' },
    { name: 'auth/none', auth: [], code: 'token_missing' },
    { name: 'auth/empty-password', auth: ['-u', 'dev:'], code: 'token_missing' },
  ])('$name -> 401 $code with WWW-Authenticate', async ({ auth, code }) => {
    const { csr } = await makeCsr('est-wrong');
    const response = await postCsr('simpleenroll', csr, auth);
    expect(response.status).toBe(401);
    expect(response.headers).toContain('www-authenticate: basic realm="imprint"');
    expect(JSON.parse(response.body)).toMatchObject({ error: code, message: expect.any(String) });
  });

  it('policy refusals are 403: a token bound to another id', async () => {
    const { token } = await t.mintToken({ deviceId: 'est-bound' });
    const { csr } = await makeCsr('est-not-bound');
    const response = await postCsr('simpleenroll', csr, ['-u', `:${token}`]);
    expect(response.status).toBe(403);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'csr_subject_mismatch' });
  });

  it('an existing device id is 403 device_exists', async () => {
    const { csr } = await makeCsr('est-basic-1');
    const response = await postCsr('simpleenroll', csr, ['-u', `:${(await t.mintToken()).token}`]);
    expect(response.status).toBe(403);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'device_exists' });
  });
});

describe('hostile simpleenroll bodies: 4xx JSON, never 5xx, and the token stays unused', () => {
  let token: string;
  beforeAll(async () => {
    token = (await t.mintToken()).token;
    writeFileSync(join(work, 'bad-base64.b64'), 'MIIB!!!not*base64');
    writeFileSync(join(work, 'not-a-csr.b64'), Buffer.from('this is not a certification request at all').toString('base64'));
    writeFileSync(join(work, 'huge.b64'), 'A'.repeat(70 * 1024));
    writeFileSync(join(work, 'empty.b64'), '');
    writeFileSync(join(work, 'binary.der'), Buffer.from([0x30, 0x82, 0xff, 0xff, 0x00, 0x01, 0x02]));
    writeFileSync(join(work, 'json.json'), JSON.stringify({ csr: 'x' }));
  });

  it.each([
    { name: 'body/malformed-base64', file: 'bad-base64.b64', type: 'application/pkcs10', status: 400, code: 'csr_malformed' },
    { name: 'body/not-a-csr', file: 'not-a-csr.b64', type: 'application/pkcs10', status: 400, code: 'csr_malformed' },
    { name: 'body/binary-der', file: 'binary.der', type: 'application/pkcs10', status: 400, code: 'csr_malformed' },
    { name: 'body/empty', file: 'empty.b64', type: 'application/pkcs10', status: 400, code: 'csr_malformed' },
    { name: 'body/oversized', file: 'huge.b64', type: 'application/pkcs10', status: 413, code: 'payload_too_large' },
    { name: 'type/json', file: 'json.json', type: 'application/json', status: 415, code: 'unsupported_media_type' },
    { name: 'type/text', file: 'not-a-csr.b64', type: 'text/plain', status: 415, code: 'unsupported_media_type' },
    { name: 'type/octet-stream', file: 'binary.der', type: 'application/octet-stream', status: 415, code: 'unsupported_media_type' },
  ])('$name -> $status $code', async ({ file, type, status, code }) => {
    const response = await curl([
      '--cacert', t.rootPath,
      '-u', `:${token}`,
      '-H', `Content-Type: ${type}`,
      '--data-binary', `@${join(work, file)}`,
      `${est}/simpleenroll`,
    ]);
    expect(response.status).toBe(status);
    expect(JSON.parse(response.body)).toMatchObject({ error: code, message: expect.any(String) });
  });

  it('the token still enrolls afterwards', async () => {
    const { csr } = await makeCsr('est-after-hostile');
    expect((await postCsr('simpleenroll', csr, ['-u', `:${token}`])).status).toBe(200);
  });

  it('GET on simpleenroll and unknown operations are 4xx JSON', async () => {
    const get = await call(`${est}/simpleenroll`, { ca: t.rootPem });
    expect(get.status).toBeGreaterThanOrEqual(400);
    expect(get.status).toBeLessThan(500);
    expect(get.body).toMatchObject({ error: expect.any(String) });
    const unknown = await call(`${est}/serverkeygen`, { ca: t.rootPem, body: 'x', headers: { 'content-type': 'application/pkcs10' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: 'not_found' });
  });
});

describe('POST simplereenroll over mTLS', () => {
  let key: string;
  let renewedKey: string;
  beforeAll(async () => {
    const { token } = await t.mintToken();
    const made = await makeCsr('est-renew');
    key = made.key;
    const response = await postCsr('simpleenroll', made.csr, ['-u', `:${token}`]);
    expect(response.status).toBe(200);
    writeFileSync(join(work, 'est-renew.pem'), pemOf(await printCerts(response.body)));
  });

  it('re-enrolls with curl --cert/--key and a new key; the new certificate works', async () => {
    const fresh = await makeCsr('est-renew');
    renewedKey = fresh.key;
    const printed = await sh(
      `curl -sS --fail --cacert "$ROOT" --cert est-renew.pem --key ${key} -H 'Content-Type: application/pkcs10' ` +
        `--data-binary @${fresh.csr} "$EST/simplereenroll" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs > est-renewed.pem && cat est-renewed.pem`,
    );
    expect(printed).toMatch(/subject=CN ?= ?est-renew/);
    const before = openssl(['x509', '-noout', '-serial', '-in', join(work, 'est-renew.pem')]);
    const after = openssl(['x509', '-noout', '-serial', '-in', join(work, 'est-renewed.pem')]);
    expect(after).not.toBe(before);
    const me = await whoAmI('est-renewed.pem', fresh.key);
    expect(me).toMatchObject({ status: 200, body: { deviceId: 'est-renew', serial: after.trim().replace(/^serial=/, '').toLowerCase() } });
  });

  it('a CSR naming another device is 403 csr_subject_mismatch', async () => {
    const other = await makeCsr('est-someone-else');
    expect(readFileSync(join(work, 'est-renewed.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    const response = await postCsr('simplereenroll', other.csr, ['--cert', join(work, 'est-renewed.pem'), '--key', join(work, renewedKey)]);
    expect(response.status).toBe(403);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'csr_subject_mismatch' });
  });

  it('without a client certificate is 401 client_cert_required, also for a body it would refuse or a label it does not know', async () => {
    const made = await makeCsr('est-renew');
    writeFileSync(join(work, 'garbage.b64'), '%%% not base64 %%%');
    for (const [path, body] of [['simplereenroll', made.csr], ['simplereenroll', 'garbage.b64'], ['no-such-label/simplereenroll', made.csr]] as const) {
      const response = await postCsr(path, body, []);
      expect(response.status, path).toBe(401);
      expect(JSON.parse(response.body)).toMatchObject({ error: 'client_cert_required' });
    }
  });
});

describe('labels', () => {
  it('enrolls under a known token label and records it with the device', async () => {
    const { token } = await t.mintToken({ label: 'line-3' });
    const { csr } = await makeCsr('est-labelled');
    const response = await postCsr('line-3/simpleenroll', csr, ['-u', `:${token}`]);
    expect(response.status).toBe(200);
    const device = await t.server.instance.store.findDevice('est-labelled');
    expect(device).toMatchObject({ enrolledVia: 'est', enrollmentLabel: 'line-3' });
    const cacerts = await call(`${est}/line-3/cacerts`, { ca: t.rootPem });
    expect(cacerts.status).toBe(200);
    const audit = await t.server.instance.store.listAudit({ limit: 1000 });
    expect(audit.find((event) => event.deviceId === 'est-labelled' && event.action === 'enroll')?.detail).toMatchObject({ protocol: 'est', label: 'line-3' });
  });

  it.each(['no-such-line', 'line%203', 'line-4', '%00'])('a token enrolls only under its own label: %s -> 404 not_found, token still usable', async (label) => {
    await t.mintToken({ label: 'line-4' }); // line-4 exists, but is not this token's batch
    const { token } = await t.mintToken({ label: 'line-3' });
    const { csr } = await makeCsr('est-unknown-label');
    const response = await postCsr(`${label}/simpleenroll`, csr, ['-u', `:${token}`]);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(JSON.parse(response.body)).toMatchObject({ error: label === '%00' ? expect.any(String) : 'not_found' });
    expect((await t.server.instance.store.findTokenByHash(hashToken(token)))?.usedAt).toBeNull();
  });

  it('the public label routes answer the same whether a batch exists or not (no label enumeration)', async () => {
    await t.mintToken({ label: 'line-5' });
    const known = await call(`${est}/line-5/csrattrs`, { ca: t.rootPem });
    const unknown = await call(`${est}/no-such-batch/csrattrs`, { ca: t.rootPem });
    expect([known.status, unknown.status]).toEqual([200, 200]);
    expect(unknown.raw.equals(known.raw)).toBe(true);
    expect((await call(`${est}/%00/csrattrs`, { ca: t.rootPem })).status).toBe(404); // not a label at all
  });

  it('a JSON enrollment is recorded as json', async () => {
    const { token } = await t.mintToken();
    const { csr } = await makeCsr('json-device');
    const der = Buffer.from(readFileSync(join(work, csr), 'utf8').replace(/\s+/g, ''), 'base64');
    const response = await call(`${t.url}/v1/enroll`, {
      ca: t.rootPem,
      json: { csr: der.toString('base64') },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(201);
    expect(await t.server.instance.store.findDevice('json-device')).toMatchObject({ enrolledVia: 'json', enrollmentLabel: null });
  });
});

describe('rate limits', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer(undefined, { ...withoutRateLimits(DEFAULT_LIMITS), failedTokensPerMinute: 3 });
  });
  afterAll(async () => {
    await limited.destroy();
  });

  it('refused tokens on simpleenroll spend the same budget as /v1/enroll', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await call(`${limited.url}/.well-known/est/simpleenroll`, {
        ca: limited.rootPem,
        body: 'MIIB',
        headers: { 'content-type': 'application/pkcs10', authorization: `Basic ${Buffer.from(':imp_wrong').toString('base64')}` },
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const json = await call(`${limited.url}/v1/enroll`, { ca: limited.rootPem, json: { csr: 'x' }, headers: { authorization: 'Bearer imp_wrong' } });
    expect(json.status).toBe(429);
  });
});
