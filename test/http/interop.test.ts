/**
 * Firmware written against openssl and curl alone: CSRs from `openssl req`, enrollment
 * with curl, the certificate checked by `openssl verify` and `openssl x509 -text`, and
 * the device reconnecting with `curl --cert`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { opensslCsr, opensslText, opensslVerify, tempDir, type KeyKind } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
const work = tempDir();
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.destroy();
});

describe.each<{ kind: KeyKind; keyText: RegExp; keyUsage: string }>([
  { kind: 'p256', keyText: /NIST CURVE: P-256/, keyUsage: 'Digital Signature' },
  { kind: 'p384', keyText: /NIST CURVE: P-384/, keyUsage: 'Digital Signature' },
  { kind: 'rsa2048', keyText: /Public-Key: \(2048 bit\)/, keyUsage: 'Digital Signature, Key Encipherment' },
])('$kind device made with openssl and curl', ({ kind, keyText, keyUsage }) => {
  const deviceId = `interop-${kind}`;
  let certificatePem: string;
  let keyPath: string;

  it('enrolls with curl and a CSR from openssl req', async () => {
    const csr = opensslCsr(kind, `/CN=${deviceId}`, work);
    keyPath = csr.keyPath;
    const { token } = await t.mintToken();
    const bodyPath = join(work, `${kind}.json`);
    writeFileSync(bodyPath, JSON.stringify({ csr: csr.csrPem }));

    const response = await curl([
      '--cacert', t.rootPath,
      '-H', `Authorization: Bearer ${token}`,
      '-H', 'Content-Type: application/json',
      '--data-binary', `@${bodyPath}`,
      `${t.url}/v1/enroll`,
    ]);

    expect(response.status).toBe(201);
    const body = JSON.parse(response.body);
    expect(body).toMatchObject({ deviceId, serial: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(body.chain).toHaveLength(2);
    certificatePem = body.certificate;
  });

  it('passes openssl verify against root + issuing CA, with purpose sslclient', () => {
    expect(opensslVerify(certificatePem, t.rootPath, t.issuerPath, ['-purpose', 'sslclient'])).toMatch(/: OK/);
  });

  it('has the device profile in openssl x509 -text', () => {
    const text = opensslText(certificatePem);
    expect(text).toMatch(new RegExp(`Subject: CN ?= ?${deviceId}\\n`));
    expect(text).toContain(`URI:spiffe://imprint.local/device/${deviceId}`);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(new RegExp(`X509v3 Key Usage: critical\\s+${keyUsage}\\n`));
    expect(text).toMatch(/X509v3 Extended Key Usage: \s*\n\s+TLS Web Client Authentication\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);
    expect(text).toMatch(/X509v3 CRL Distribution Points:[\s\S]+URI:https:\/\/localhost:\d+\/crl/);
    expect(text).toMatch(/OCSP - URI:https:\/\/localhost:\d+\/ocsp/);
    expect(text).toMatch(keyText);
    const serial = /Serial Number:\s*\n\s+([0-9a-f:]+)/.exec(text)![1]!;
    expect(serial.split(':')).toHaveLength(16);
    const notBefore = new Date(/Not Before: (.+)/.exec(text)![1]!);
    const notAfter = new Date(/Not After : (.+)/.exec(text)![1]!);
    expect(Date.now() - notBefore.getTime()).toBeGreaterThanOrEqual(4 * 60_000); // backdated ~5 min
    expect((notAfter.getTime() - notBefore.getTime()) / 86_400_000).toBe(90);
  });

  it('reaches /v1/device with curl --cert', async () => {
    const certPath = join(work, `${kind}.pem`);
    writeFileSync(certPath, certificatePem);
    const response = await curl(['--cacert', t.rootPath, '--cert', certPath, '--key', keyPath, `${t.url}/v1/device`]);
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ deviceId, status: 'active' });
  });
});

describe('GET /v1/ca', () => {
  it('serves the issuing CA then the root, which openssl accepts as a chain', async () => {
    const response = await curl(['--cacert', t.rootPath, `${t.url}/v1/ca`]);
    expect(response.status).toBe(200);
    const blocks = response.body.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
    expect(blocks).toHaveLength(2);
    expect(opensslText(blocks[0]!)).toContain('CN = imprint Issuing CA');
    expect(opensslText(blocks[1]!)).toContain('CN = imprint Root CA');
  });

  it('the server presents a chain that a client trusting only the root verifies', async () => {
    const response = await curl(['--cacert', t.rootPath, `${t.url}/healthz`]);
    expect(response).toEqual({ status: 200, body: '{"status":"ok"}' });
  });
});
