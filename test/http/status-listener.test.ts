/**
 * The plain-HTTP status listener (`serve --status-port`): certificates point relying
 * parties at it, openssl fetches CRLs and OCSP answers from it by itself (the URLs come from
 * the certificate), and it serves nothing but certificate status.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { curl } from '../helpers/curl.js';
import { call } from '../helpers/https.js';
import { openssl, opensslExitAsync, tempDir } from '../helpers/openssl.js';
import { freePort } from '../../scripts/server-process.js';
import { enrollDevice, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let statusUrl: string;
const work = tempDir();
const paths: Record<'good' | 'revoked', string> = { good: join(work, 'good.pem'), revoked: join(work, 'revoked.pem') };

beforeAll(async () => {
  const statusPort = await freePort();
  t = await startTestServer(join(tempDir(), 'data'), withoutRateLimits(DEFAULT_LIMITS), { statusPort, init: { hostnames: ['127.0.0.1'] } });
  statusUrl = t.server.statusUrl!;
  for (const name of ['good', 'revoked'] as const) {
    const device = await enrollDevice(t, `status-${name}`);
    expect(device.response.status).toBe(201);
    writeFileSync(paths[name], device.cert);
  }
  await t.server.instance.fleet.revokeDevice('status-revoked', 'keyCompromise', { actor: 'cli:test', role: 'admin' });
});

afterAll(() => t.destroy());

describe('serve --status-port', () => {
  it('listens on the port it was given, and new certificates point at it over http', () => {
    expect(statusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(openssl(['x509', '-noout', '-ocsp_uri', '-in', paths.good]).trim()).toBe(`${statusUrl}/ocsp`);
    expect(openssl(['x509', '-noout', '-ext', 'crlDistributionPoints', '-in', paths.good])).toContain(`URI:${statusUrl}/crl`);
  });

  it('openssl verify -crl_download fetches the CRL named in the certificate: good is OK, revoked is revoked', async () => {
    const verify = (leaf: string) =>
      opensslExitAsync(['verify', '-crl_check', '-crl_download', '-CAfile', t.rootPath, '-untrusted', t.issuerPath, leaf]);
    const good = await verify(paths.good);
    expect(good.code, good.output).toBe(0);
    expect(good.output).toContain(': OK');
    const revoked = await verify(paths.revoked);
    expect(revoked.code).not.toBe(0);
    expect(revoked.output).toMatch(/certificate revoked/);
  });

  it('openssl ocsp at the certificate\'s OCSP URL reads good and revoked, verified against the root', async () => {
    const status = async (leaf: string) => {
      const url = openssl(['x509', '-noout', '-ocsp_uri', '-in', leaf]).trim();
      const run = await opensslExitAsync(['ocsp', '-issuer', t.issuerPath, '-cert', leaf, '-url', url, '-CAfile', t.rootPath]);
      expect(run.code, run.output).toBe(0);
      expect(run.output).toContain('Response verify OK');
      return run.output;
    };
    expect(await status(paths.good)).toMatch(/good\.pem: good/);
    expect(await status(paths.revoked)).toMatch(/revoked\.pem: revoked[\s\S]*Reason: keyCompromise/);
  });

  it('serves the same CRLs as the HTTPS listener', async () => {
    for (const path of ['/crl', '/crl/root']) {
      const plain = join(work, `plain-${path.replaceAll('/', '_')}.der`);
      const secure = join(work, `secure-${path.replaceAll('/', '_')}.der`);
      expect((await curl(['-o', plain, `${statusUrl}${path}`])).status).toBe(200);
      expect((await curl(['--cacert', t.rootPath, '-o', secure, `${t.url}${path}`])).status).toBe(200);
      expect(readFileSync(plain).equals(readFileSync(secure))).toBe(true);
    }
  });

  it('serves nothing else: enrollment, devices and the admin API are 404 not_found in plain text', async () => {
    for (const [path, args] of [
      ['/v1/enroll', ['-H', 'content-type: application/json', '--data-binary', '{"csr":"x"}']],
      ['/v1/device', []],
      ['/v1/admin/devices', []],
      ['/v1/ca', []],
    ] as const) {
      const answer = await curl([...args, `${statusUrl}${path}`]);
      expect(answer.status, path).toBe(404);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'not_found' });
    }
    // And the HTTPS listener is unchanged by it.
    expect((await call(`${t.url}/healthz`, { ca: t.rootPem })).status).toBe(200);
  });
});
