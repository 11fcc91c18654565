/** Operator PKCS#12 files built in-process: read back by openssl and by Node's TLS. */
import { createSecureContext } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { buildPkcs12 } from '../../src/ca/pkcs12.js';
import { openssl, opensslExit, tempDir } from '../helpers/openssl.js';
import { issueOperator, startTestServer } from '../helpers/server.js';

describe('buildPkcs12', () => {
  it('openssl and Node read the key and both certificates back with the passphrase, and refuse a wrong one', async () => {
    const t = await startTestServer();
    try {
      const operator = await issueOperator(t, 'p12-alice', 'admin');
      const [leaf, issuer] = operator.cert.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
      const der = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      const p12 = await buildPkcs12({
        privateKey: createPrivateKey(operator.key),
        certificatesDer: [der(leaf!), der(issuer!)],
        friendlyName: 'p12-alice',
        passphrase: 'correct horse',
      });
      const file = join(tempDir(), 'alice.p12');
      writeFileSync(file, p12);

      const dump = openssl(['pkcs12', '-in', file, '-passin', 'pass:correct horse', '-nodes']);
      expect(dump).toMatch(/friendlyName: p12-alice/);
      const certificates = dump.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
      expect(certificates.map((pem) => new X509Certificate(pem).subject).sort()).toEqual(
        [new X509Certificate(leaf!).subject, new X509Certificate(issuer!).subject].sort(),
      );
      const key = dump.match(/-----BEGIN PRIVATE KEY-----[^-]+-----END PRIVATE KEY-----/)![0];
      expect(createPublicKey(key).export({ format: 'jwk' })).toEqual(createPublicKey(operator.key).export({ format: 'jwk' }));
      const info = opensslExit(['pkcs12', '-in', file, '-passin', 'pass:correct horse', '-info', '-noout']).output;
      expect(info).toMatch(/MAC: sha256/);
      expect(info).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256/);
      expect(opensslExit(['pkcs12', '-in', file, '-passin', 'pass:wrong', '-nodes']).code).not.toBe(0);

      expect(() => createSecureContext({ pfx: p12, passphrase: 'correct horse' })).not.toThrow();
      expect(() => createSecureContext({ pfx: p12, passphrase: 'wrong' })).toThrow();
    } finally {
      await t.destroy();
    }
  });
});
