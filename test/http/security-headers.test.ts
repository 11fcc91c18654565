/**
 * Security headers over real sockets: every API answer (JSON, PEM, DER, errors included)
 * carries the headers that protect a non-HTML answer, and the console, the one HTML
 * surface, carries helmet's whole set with its own strict policy.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, withoutRateLimits } from '../../src/http/limits.js';
import { call, type Response } from '../helpers/https.js';
import { tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer(join(tempDir(), 'data'), withoutRateLimits(DEFAULT_LIMITS));
});
afterAll(() => t.destroy());

/** What protects any answer a browser might be pointed at. */
function expectApiHeaders(response: Response, what: string): void {
  expect(response.headers['strict-transport-security'], what).toBe('max-age=31536000; includeSubDomains');
  expect(response.headers['x-content-type-options'], what).toBe('nosniff');
  expect(response.headers['cross-origin-resource-policy'], what).toBe('same-origin');
  expect(response.headers['x-frame-options'], what).toBe('SAMEORIGIN');
}

describe('security headers', () => {
  it('API answers carry HSTS, nosniff, CORP and frame options, errors and enrollment included', async () => {
    const answers: [string, Response][] = [
      ['GET /healthz', await call(`${t.url}/healthz`, { ca: t.rootPem })],
      ['GET /v1/ca', await call(`${t.url}/v1/ca`, { ca: t.rootPem })],
      ['GET /nowhere', await call(`${t.url}/nowhere`, { ca: t.rootPem })],
      ['POST /v1/enroll without a token', await call(`${t.url}/v1/enroll`, { ca: t.rootPem, json: { csr: 'x' } })],
      ['GET /v1/device without a certificate', await call(`${t.url}/v1/device`, { ca: t.rootPem })],
    ];
    expect(answers.map(([, response]) => response.status)).toEqual([200, 200, 404, 401, 401]);
    for (const [what, response] of answers) {
      expectApiHeaders(response, what);
      // Document-only headers stay on the console's pages.
      expect(response.headers['referrer-policy'], what).toBeUndefined();
      expect(response.headers['content-security-policy'], what).toBeUndefined();
    }
  });

  it('the console carries helmet’s whole set and its own policy, also on a refusal', async () => {
    const response = await call(`${t.url}/console`, { ca: t.rootPem });
    expect(response.status).toBe(401);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.headers['x-frame-options']).toBe('DENY');
    expect(response.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(response.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['cross-origin-resource-policy']).toBe('same-origin');
    expect(response.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(response.headers['referrer-policy']).toBe('no-referrer');
    expect(response.headers['origin-agent-cluster']).toBe('?1');
    expect(response.headers['x-dns-prefetch-control']).toBe('off');
    expect(response.headers['x-permitted-cross-domain-policies']).toBe('none');
  });
});
