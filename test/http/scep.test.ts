/**
 * SCEP (RFC 8894) driven by Debian's scepclient (package `scep`, micromdm's client) against
 * both listeners: the plain-HTTP status listener, and HTTPS with our root as the trust
 * anchor (scepclient has no CA flag; Go reads SSL_CERT_FILE). GetCACaps and GetCACert
 * with curl, the issued certificate checked with openssl and used for mTLS, and hostile
 * inputs that must end in a 4xx or a FAILURE CertRep, never a 5xx.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caPaths } from '../../src/ca/ca-directory.js';
import { curl } from '../helpers/curl.js';
import { call } from '../helpers/https.js';
import { databaseUrlFor } from '../helpers/database.js';
import { openssl, opensslVerify, tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { ScepService } from '../../src/enrollment/scep-service.js';
import { ImprintClient } from '../../simulator/client.js';
import { buildCsr, buildCsrDer, generateDeviceKey, type DeviceKey } from '../../simulator/csr.js';
import { buildPkiMessage, raFromCaCertificates, readCertRep, ScepMessageType, selfSignedCertificate, transactionIdOf, type ScepRa } from '../../simulator/scep.js';

const execFileAsync = promisify(execFile);

let t: TestServer;
let statusUrl: string;
let fingerprint: string;
const work = tempDir();

beforeAll(async () => {
  t = await startTestServer(undefined, undefined, { statusPort: 0 });
  statusUrl = t.server.statusUrl!;
  // What a device is given alongside the URL: the RA certificate's SHA-256 fingerprint.
  fingerprint = openssl(['x509', '-in', caPaths(t.dataDir).scepRa, '-noout', '-fingerprint', '-sha256']).split('=')[1]!.replace(/:/g, '').trim().toLowerCase();
});
afterAll(async () => {
  await t.destroy();
});

let dirs = 0;
/** A fresh directory for one "device". */
function deviceDir(): string {
  const dir = join(work, `device-${++dirs}`);
  mkdirSync(dir);
  return dir;
}

/**
 * Runs scepclient with the RA fingerprint (the recipe of the README); a key is made when
 * `dir` has none, and a certificate already there makes it a RenewalReq.
 */
async function scepclient(base: string, dir: string, cn: string, challenge?: string): Promise<{ code: number; output: string }> {
  const args = ['-server-url', `${base}/scep`, '-private-key', join(dir, 'key.pem'), '-certificate', join(dir, 'cert.pem'), '-cn', cn, '-ca-fingerprint', fingerprint];
  if (challenge !== undefined) args.push('-challenge', challenge);
  try {
    const { stdout, stderr } = await execFileAsync('scepclient', args, { timeout: 30_000, env: { ...process.env, SSL_CERT_FILE: t.rootPath } });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

const serialOf = (dir: string): string => openssl(['x509', '-in', join(dir, 'cert.pem'), '-noout', '-serial']).split('=')[1]!.trim().toLowerCase();

/** GET /v1/device over mTLS with the certificate scepclient stored, through curl. */
async function whoAmI(dir: string) {
  const response = await curl(['--cacert', t.rootPath, '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), `${t.url}/v1/device`]);
  return { status: response.status, body: JSON.parse(response.body) as Record<string, unknown> };
}

describe.each([
  ['http', () => statusUrl],
  ['https', () => t.url],
])('SCEP over %s', (scheme, base) => {
  const curlTrust = () => (scheme === 'https' ? ['--cacert', t.rootPath] : []);

  it('GetCACaps lists the capabilities one per line', async () => {
    const response = await curl([...curlTrust(), `${base()}/scep?operation=GetCACaps`]);
    expect(response.status).toBe(200);
    expect(response.body.trim().split('\n')).toEqual(['POSTPKIOperation', 'SHA-256', 'AES', 'SCEPStandard', 'Renewal']);
  });

  it('GetCACert is the RA, the issuing CA and the root as degenerate PKCS#7', async () => {
    const file = join(work, `cacert-${scheme}.der`);
    const response = await curl([...curlTrust(), '-o', file, '-D', '-', `${base()}/scep?operation=GetCACert`]);
    expect(response.status).toBe(200);
    expect(response.body.toLowerCase()).toContain('content-type: application/x-x509-ca-ra-cert');
    const printed = openssl(['pkcs7', '-inform', 'DER', '-in', file, '-print_certs', '-noout']);
    expect(printed.match(/subject=.*/g)).toEqual(['subject=CN = imprint SCEP RA', 'subject=CN = imprint Issuing CA', 'subject=CN = imprint Root CA']);
  });

  it('enrolls with the token as challenge, refuses it again, renews with the issued certificate', async () => {
    const { token } = await t.mintToken();
    const device = deviceDir();
    const cn = `scep-${scheme}-1`;
    const enrolled = await scepclient(base(), device, cn, token);
    expect(enrolled.output).toContain('pkiStatus=SUCCESS');
    const pem = readFileSync(join(device, 'cert.pem'), 'utf8');
    expect(opensslVerify(pem, t.rootPath, t.issuerPath)).toContain('OK');
    const me = await whoAmI(device);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ deviceId: cn, status: 'active', serial: serialOf(device) });

    // The same token with a new key: a FAILURE CertRep, and no certificate.
    const other = deviceDir();
    const again = await scepclient(base(), other, `scep-${scheme}-2`, token);
    expect(again.code).not.toBe(0);
    expect(again.output).toContain('failInfo: badRequest');

    // RenewalReq, signed with the certificate just issued.
    const before = serialOf(device);
    const renewed = await scepclient(base(), device, cn);
    expect(renewed.output).toContain('pkiStatus=SUCCESS');
    expect(serialOf(device)).not.toBe(before);
    expect(opensslVerify(readFileSync(join(device, 'cert.pem'), 'utf8'), t.rootPath, t.issuerPath)).toContain('OK');
    expect((await whoAmI(device)).body).toMatchObject({ deviceId: cn, serial: serialOf(device) });
  });

  it('refuses a wrong challenge with a FAILURE CertRep', async () => {
    const result = await scepclient(base(), deviceDir(), `scep-${scheme}-wrong`, 'imp_not-a-token');
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('failInfo: badRequest');
  });
});

describe('hostile SCEP input', () => {
  const post = (body: string, type: string, extra: string[] = []) =>
    curl(['-H', `Content-Type: ${type}`, '--data-binary', body, ...extra, `${statusUrl}/scep?operation=PKIOperation`]);

  it.each([
    ['body/garbage', () => post('garbage', 'application/x-pki-message'), 400],
    ['body/wrong-content-type', () => post('garbage', 'text/plain'), 415],
    ['body/json', () => post('{}', 'application/json'), 415],
    ['get/not-base64', () => curl([`${statusUrl}/scep?operation=PKIOperation&message=%25%25`]), 400],
    ['get/not-cms', () => curl([`${statusUrl}/scep?operation=PKIOperation&message=AAAA`]), 400],
    ['operation/unknown', () => curl([`${statusUrl}/scep?operation=GetNothing`]), 400],
    ['operation/missing', () => curl([`${statusUrl}/scep`]), 400],
  ])('%s', async (_name, send, status) => {
    const response = await send();
    expect(response.status).toBe(status);
    expect(JSON.parse(response.body)).toHaveProperty('error');
  });

  it('body/oversized is 413', async () => {
    const file = join(work, 'big.bin');
    writeFileSync(file, Buffer.alloc(70 * 1024, 0x30));
    const response = await post(`@${file}`, 'application/x-pki-message');
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'payload_too_large' });
  });

  it('a renewal signed by a certificate of another CA gets a FAILURE CertRep', async () => {
    const dir = deviceDir();
    const sh = (script: string) => execFileAsync('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: dir, timeout: 20_000 });
    // Another CA issues an RSA certificate with the same CN as a real device.
    await sh(`
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem -subj "/CN=imprint Issuing CA" -days 2 2>/dev/null
      openssl genrsa -traditional -out key.pem 2048 2>/dev/null
      openssl req -new -key key.pem -subj "/CN=scep-http-1" -out req.pem
      openssl x509 -req -in req.pem -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days 2 -out cert.pem 2>/dev/null
    `);
    const result = await scepclient(statusUrl, dir, 'scep-http-1');
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('failInfo: badCertID');
  });
});

/**
 * SCEP messages built with the simulator's device-side SCEP code against a server whose
 * log lines are kept: what the log line and the metrics say about a PKCSReq and a
 * RenewalReq, the PKCSReq signer's key, and retries.
 */
describe('SCEP messages from the simulator', () => {
  let logged: RunningServer;
  let ra: ScepRa;
  const lines: Record<string, unknown>[] = [];
  const rootPem = () => readFileSync(caPaths(logged.instance.dataDir).root, 'utf8');

  beforeAll(async () => {
    logged = await startServer({
      dataDir: join(work, 'logged'),
      databaseUrl: await databaseUrlFor(join(work, 'logged')),
      host: '127.0.0.1',
      port: 0,
      statusPort: 0,
      init: { hostnames: ['127.0.0.1'] },
      limits: withoutRateLimits(DEFAULT_LIMITS),
      logger: true,
      logLevel: 'info',
      logStream: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    ra = raFromCaCertificates(await new ImprintClient(logged.url, rootPem()).scepCaCertificates(), rootPem());
  });
  afterAll(async () => {
    await logged.close();
  });

  const mint = async () => (await logged.instance.tokens.mint({ count: 1 }, { actor: 'cli:test', role: 'admin' })).tokens[0]!;

  /** POSTs a pkiMessage to the status listener with a request id; the raw answer. */
  async function post(message: Buffer, requestId: string) {
    const file = join(work, `${requestId}.der`);
    writeFileSync(file, message);
    const out = join(work, `${requestId}.rep`);
    const response = await curl(['-H', 'Content-Type: application/x-pki-message', '-H', `X-Request-Id: ${requestId}`, '--data-binary', `@${file}`, '-o', out, `${logged.statusUrl}/scep?operation=PKIOperation`]);
    return { status: response.status, body: readFileSync(out) };
  }

  /** A PKCSReq for `deviceId` with `token`; `signer` signs it (by default the CSR's own key). */
  async function pkcsReq(deviceId: string, token: string, key: DeviceKey, signer: DeviceKey = key, transactionId = transactionIdOf(key)) {
    const senderNonce = randomBytes(16);
    const csrDer = buildCsrDer(key, deviceId, { challengePassword: token });
    const message = buildPkiMessage(ra, { messageType: ScepMessageType.PKCSReq, transactionId, senderNonce, csrDer, signerCertificate: selfSignedCertificate(signer, deviceId), signerKey: signer });
    return { message, read: (certRep: Buffer) => readCertRep(certRep, { ra, transactionId, senderNonce, recipientKey: signer, commonName: deviceId }) };
  }

  const logLine = async (requestId: string) => {
    for (let i = 0; i < 50 && !lines.some((line) => line.requestId === requestId); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    return lines.find((line) => line.requestId === requestId);
  };
  const scrape = async () => (await curl([`${logged.statusUrl}/metrics`])).body;

  it('a PKCSReq, a refused one and a RenewalReq are logged and counted as SCEP enrollments and a renewal', async () => {
    const before = await scrape();
    const token = await mint();
    const key = await generateDeviceKey('rsa');
    const enroll = await pkcsReq('scep-logged-1', token.token, key);
    const enrolled = await post(enroll.message, 'scep-enroll-1');
    expect(enrolled.status).toBe(200);
    const result = enroll.read(enrolled.body);
    expect(result.status).toBe('success');
    const certificate = new X509Certificate((result as { certificate: Buffer }).certificate);
    const serial = certificate.serialNumber.toLowerCase().replace(/^(00)+/, '');
    expect(await logLine('scep-enroll-1')).toMatchObject({
      event: 'enroll', protocol: 'scep', outcome: 'ok', status: 200, deviceId: 'scep-logged-1', serial, tokenId: token.id,
    });

    // The same token again with another key and CSR: a FAILURE CertRep, logged with its code.
    const other = await pkcsReq('scep-logged-2', token.token, await generateDeviceKey('rsa'));
    const refused = await post(other.message, 'scep-enroll-2');
    expect(refused.status).toBe(200);
    expect(other.read(refused.body)).toEqual({ status: 'failure', failInfo: 'badRequest' });
    expect(await logLine('scep-enroll-2')).toMatchObject({ event: 'enroll', protocol: 'scep', outcome: 'token_used', status: 200, tokenId: token.id });

    // A RenewalReq signed with the certificate just issued.
    const renewKey = await generateDeviceKey('rsa');
    const transactionId = transactionIdOf(renewKey);
    const senderNonce = randomBytes(16);
    const renewal = buildPkiMessage(ra, {
      messageType: ScepMessageType.RenewalReq, transactionId, senderNonce, csrDer: buildCsrDer(renewKey, 'scep-logged-1'), signerCertificate: certificate.raw, signerKey: key,
    });
    const renewed = readCertRep((await post(renewal, 'scep-renew-1')).body, { ra, transactionId, senderNonce, recipientKey: key, commonName: 'scep-logged-1' });
    expect(renewed.status).toBe('success');
    expect(await logLine('scep-renew-1')).toMatchObject({ event: 'renew', protocol: 'scep', outcome: 'ok', actor: 'device:scep-logged-1', deviceId: 'scep-logged-1' });

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('imprint_enrollments_total', { protocol: 'scep', outcome: 'ok' })).toBe(1);
    expect(delta('imprint_enrollments_total', { protocol: 'scep', outcome: 'token_used' })).toBe(1);
    expect(delta('imprint_renewals_total', { outcome: 'ok' })).toBe(1);
    // GetCACert (made in beforeAll) and GetCACaps write no line.
    expect(lines.filter((line) => line.event !== undefined && line.protocol === 'scep')).toHaveLength(3);
  });

  it('refuses a PKCSReq whose signer certificate holds another key than the CSR (badMessageCheck), and the token stays usable', async () => {
    const token = await mint();
    const key = await generateDeviceKey('rsa');
    const stranger = await pkcsReq('scep-signer-1', token.token, key, await generateDeviceKey('rsa'));
    const refused = await post(stranger.message, 'scep-signer-1');
    expect(refused.status).toBe(200);
    expect(stranger.read(refused.body)).toEqual({ status: 'failure', failInfo: 'badMessageCheck' });
    expect(await logLine('scep-signer-1')).toMatchObject({ event: 'enroll', protocol: 'scep', outcome: 'bad_request' });

    const honest = await pkcsReq('scep-signer-1', token.token, key);
    expect(honest.read((await post(honest.message, 'scep-signer-2')).body).status).toBe('success');
  });

  it('refuses a signer key outside RSA 2048-4096 with exponent 65537 before verifying anything under it (badAlg)', async () => {
    const token = await mint();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    const odd = { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    const request = await pkcsReq('scep-odd-signer', token.token, odd);
    const refused = await post(request.message, 'scep-odd-signer');
    expect(refused.status).toBe(200);
    expect(request.read(refused.body)).toEqual({ status: 'failure', failInfo: 'badAlg' });
  });

  it('a transactionID that is not a PrintableString of at most 256 characters is not echoed: 400 JSON, and the token stays usable', async () => {
    const token = await mint();
    const key = await generateDeviceKey('rsa');
    for (const [name, transactionId] of [['long', 'a'.repeat(257)], ['control', 'abc\r\ndef'], ['non-printable', 'id_with*star']] as const) {
      const odd = await pkcsReq('scep-odd-transaction', token.token, key, key, transactionId);
      const refused = await post(odd.message, `scep-odd-transaction-${name}`);
      expect(refused.status, name).toBe(400);
      expect(JSON.parse(refused.body.toString())).toMatchObject({ error: 'bad_request' });
    }
    const longest = await pkcsReq('scep-odd-transaction', token.token, key, key, 'A1+/='.repeat(51) + 'z');
    expect(longest.read((await post(longest.message, 'scep-odd-transaction-ok')).body).status).toBe('success');
  });

  it('a repeated PKCSReq (same transactionID and CSR) gets the same certificate, also re-signed after a lost reply; another CSR with the token is refused', async () => {
    const token = await mint();
    const key = await generateDeviceKey('rsa');
    const first = await pkcsReq('scep-retry-1', token.token, key);
    const original = first.read((await post(first.message, 'scep-retry-1')).body);
    expect(original.status).toBe('success');
    const certificateOf = (result: ReturnType<typeof first.read>) => (result as { certificate: Buffer }).certificate.toString('hex');

    // The very same bytes again (the device never saw the first reply).
    const again = first.read((await post(first.message, 'scep-retry-2')).body);
    expect(certificateOf(again)).toBe(certificateOf(original));

    // A new message for the same transaction: new senderNonce and signature, same CSR key and challenge.
    const resent = await pkcsReq('scep-retry-1', token.token, key);
    const resentResult = resent.read((await post(resent.message, 'scep-retry-3')).body);
    expect(certificateOf(resentResult)).toBe(certificateOf(original));
    expect(await logLine('scep-retry-3')).toMatchObject({ outcome: 'ok', tokenId: token.id, deviceId: 'scep-retry-1' });

    // Same token, same transactionID, another key (so another CSR): refused.
    const otherKey = await generateDeviceKey('rsa');
    const other = await pkcsReq('scep-retry-1', token.token, otherKey, otherKey, transactionIdOf(key));
    expect(other.read((await post(other.message, 'scep-retry-4')).body)).toEqual({ status: 'failure', failInfo: 'badRequest' });
    expect(await logLine('scep-retry-4')).toMatchObject({ outcome: 'token_used' });
  });
});

// Reading a PKIOperation costs the server milliseconds of CPU (pkijs, RSA) before it can
// refuse it, and anyone may send the same refused message again and again: refusals a sender
// can make at will spend a SCEP budget of the source's. A renewal signed by a certificate we
// issued is refused for that device's own state and spends nothing of its address's.
describe('SCEP refusals and the failure budgets', () => {
  let budgeted: RunningServer;
  let ra: ScepRa;
  let rootPem: string;
  const dataDir = join(work, 'budgeted');

  beforeAll(async () => {
    budgeted = await startServer({
      dataDir,
      databaseUrl: await databaseUrlFor(dataDir),
      host: '127.0.0.1',
      port: 0,
      statusPort: 0,
      init: { hostnames: ['127.0.0.1'] },
      limits: { ...withoutRateLimits(DEFAULT_LIMITS), failedTokensPerMinute: 2 },
    });
    rootPem = readFileSync(caPaths(dataDir).root, 'utf8');
    ra = raFromCaCertificates(await new ImprintClient(budgeted.url, rootPem).scepCaCertificates(), rootPem);
  });
  afterAll(async () => {
    await budgeted.close();
  });

  const mint = async () => (await budgeted.instance.tokens.mint({ count: 1 }, { actor: 'cli:test', role: 'admin' })).tokens[0]!;
  let posts = 0;
  async function post(message: Buffer): Promise<{ status: number; body: Buffer }> {
    const file = join(work, `budgeted-${++posts}.der`);
    writeFileSync(file, message);
    const response = await curl(['-H', 'Content-Type: application/x-pki-message', '--data-binary', `@${file}`, '-o', `${file}.rep`, `${budgeted.statusUrl}/scep?operation=PKIOperation`]);
    return { status: response.status, body: readFileSync(`${file}.rep`) };
  }
  const pkcsReq = (deviceId: string, token: string, key: DeviceKey, signer: DeviceKey = key, senderNonce = randomBytes(16)) =>
    buildPkiMessage(ra, {
      messageType: ScepMessageType.PKCSReq, transactionId: transactionIdOf(key), senderNonce,
      csrDer: buildCsrDer(key, deviceId, { challengePassword: token }), signerCertificate: selfSignedCertificate(signer, deviceId), signerKey: signer,
    });
  const enrollJson = async (deviceId: string) => {
    const key = await generateDeviceKey();
    return (await call(`${budgeted.url}/v1/enroll`, { ca: rootPem, json: { csr: buildCsr(key, deviceId) }, headers: { authorization: `Bearer ${(await mint()).token}` } })).status;
  };

  it('a revoked device renewing again and again spends no budget of its address: others behind it still enroll', async () => {
    const key = await generateDeviceKey('rsa');
    const transactionId = transactionIdOf(key);
    const senderNonce = randomBytes(16);
    const enrolled = readCertRep((await post(pkcsReq('scep-budget-revoked', (await mint()).token, key, key, senderNonce))).body, { ra, transactionId, senderNonce, recipientKey: key, commonName: 'scep-budget-revoked' });
    expect(enrolled.status).toBe('success');
    await budgeted.instance.fleet.revokeDevice('scep-budget-revoked', undefined, { actor: 'cli:test', role: 'admin' });
    const renewal = buildPkiMessage(ra, {
      messageType: ScepMessageType.RenewalReq, transactionId, senderNonce, csrDer: buildCsrDer(key, 'scep-budget-revoked'),
      signerCertificate: (enrolled as { certificate: Buffer }).certificate, signerKey: key,
    });
    for (let i = 0; i < 4; i++) {
      const refused = await post(renewal);
      expect(refused.status).toBe(200);
      expect(readCertRep(refused.body, { ra, transactionId, senderNonce, recipientKey: key, commonName: 'scep-budget-revoked' }).status).toBe('failure');
    }
    expect(await enrollJson('json-behind-revoked')).toBe(201);
    const honest = await generateDeviceKey('rsa');
    expect((await post(pkcsReq('scep-behind-revoked', (await mint()).token, honest))).status).toBe(200);
  });

  it('a refused message sent again, then an unreadable one, use up the SCEP budget: the next PKIOperation is 429, JSON enrollment is not held back', async () => {
    const token = await mint();
    const key = await generateDeviceKey('rsa');
    // Signed by a key other than the CSR's: badMessageCheck, a FAILURE CertRep (200).
    const refused = pkcsReq('scep-budget-1', token.token, key, await generateDeviceKey('rsa'));
    expect((await post(refused)).status).toBe(200);
    expect((await post(Buffer.from('30030201ff', 'hex'))).status).toBe(400);
    expect((await post(refused)).status).toBe(429);
    expect((await post(pkcsReq('scep-budget-1', token.token, key))).status).toBe(429);
    // GetCACaps is a public read, never refused by the budget; /v1/enroll has its own.
    expect((await curl([`${budgeted.statusUrl}/scep?operation=GetCACaps`])).status).toBe(200);
    expect(await enrollJson('json-beside-refused')).toBe(201);
    // Nothing was enrolled over SCEP, and the token is unused.
    expect((await budgeted.instance.tokens.list({ status: 'unused' })).items.map((each) => each.id)).toContain(token.id);
  });

  it('a message code that cannot be loaded is a 503 for that request, and the next one loads it again', async () => {
    const instance = budgeted.instance.signing();
    let failures = 1;
    const scep = new ScepService(instance.ca, instance.enrollment, instance.clients, () => instance.scep.ra, async () => {
      if (failures-- > 0) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      return import('../../src/ca/scep.js');
    });
    const message = pkcsReq('scep-load-1', (await mint()).token, await generateDeviceKey('rsa'));
    await expect(scep.pkiOperation(message, '127.0.0.1')).rejects.toMatchObject({ code: 'service_unavailable' });
    expect((await scep.pkiOperation(message, '127.0.0.1')).refusal).toBeUndefined();
  });
});

/** A sample's value in Prometheus text (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((label) => present.includes(label))) return Number(match[3]);
  }
  return 0;
}
