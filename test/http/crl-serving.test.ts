/**
 * A CRL of more than a megabyte over HTTPS: answered in pieces as the socket drains, it
 * arrives whole and exact (its length announced), to GET and HEAD, to several clients at once.
 */
import { request } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { crlEntries } from '../../scripts/bench-crl.js';
import { execute } from '../helpers/database.js';
import { opensslExit, tempDir } from '../helpers/openssl.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Revoked certificates written behind the server's back: ~36 bytes each in the CRL, ~1.8 MB in all. */
const REVOKED = 50_000;

let t: TestServer;
const work = tempDir();

beforeAll(async () => {
  t = await startTestServer();
  // One statement both stores read alike; serials of decimal digits are hex too.
  execute(t.dataDir, 'UPDATE revocation_state SET seq = seq + 1');
  execute(
    t.dataDir,
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${REVOKED})
     INSERT INTO certificates (serial, kind, subject, spki_sha256, not_before, not_after, issued_at, status, revoked_at, revocation_reason, revocation_seq, der)
     SELECT '7e' || (10000000 + i), 'device', 'bulk-' || i, 'bulk-' || i, 1767225600000, 4102444800000, 1767225600000, 'revoked',
            1767225600000 + i, 'keyCompromise', (SELECT seq FROM revocation_state WHERE id = 1), X'00'
     FROM n`.replace("X'00'", process.env.IMPRINT_TEST_STORE === 'postgres' ? "'\\x00'::bytea" : "X'00'"),
  );
});
afterAll(async () => {
  await t.destroy();
});

/** One request on a connection of its own: status, headers and the whole body. */
function fetchCrl(method: 'GET' | 'HEAD'): Promise<{ status: number; length: string | undefined; type: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.url}/crl`, { method, ca: t.rootPem, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], type: res.headers['content-type'], body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

it('answers a CRL of more than a megabyte whole, with its length, to several clients at once; HEAD gives the length alone', async () => {
  const answers = await Promise.all([fetchCrl('GET'), fetchCrl('GET'), fetchCrl('GET')]);
  const [first] = answers;
  expect(first!.body.length).toBeGreaterThan(1024 * 1024);
  for (const answer of answers) {
    expect([answer.status, answer.type, answer.length]).toEqual([200, 'application/pkix-crl', String(first!.body.length)]);
    expect(answer.body.equals(first!.body)).toBe(true);
  }
  const file = join(work, 'crl.der');
  writeFileSync(file, first!.body);
  expect(opensslExit(['crl', '-inform', 'DER', '-in', file, '-CAfile', t.issuerPath, '-noout'])).toEqual({ code: 0, output: expect.stringMatching(/verify OK/) });
  expect(crlEntries(first!.body)).toBe(REVOKED);
  expect(first!.body.includes(Buffer.from(`7e${10_000_000 + REVOKED}`, 'hex'))).toBe(true);

  const head = await fetchCrl('HEAD');
  expect([head.status, head.length, head.body.length]).toEqual([200, String(first!.body.length), 0]);
});
