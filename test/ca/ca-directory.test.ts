/**
 * The CA directory: a passphrase-encrypted issuing key, importing an existing issuing CA
 * made by openssl whose root stays offline, and CA files found without the settings init
 * writes beside them.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCsr, generateDeviceKey } from '../../simulator/csr.js';
import { caPaths } from '../../src/ca/ca-directory.js';
import { initInstance, openInstance } from '../../src/instance.js';
import { call } from '../helpers/https.js';
import { openssl, opensslText, opensslVerify, tempDir } from '../helpers/openssl.js';
import { startTestServer } from '../helpers/server.js';
import { startServer } from '../../src/server.js';

describe('IMPRINT_CA_PASSPHRASE', () => {
  it('encrypts the CA keys at rest, and the CA loads only with the right passphrase', async () => {
    const dataDir = join(tempDir(), 'data');
    await initInstance(dataDir, { passphrase: 'correct horse' });
    expect(readFileSync(caPaths(dataDir).issuerKey, 'utf8')).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect(readFileSync(caPaths(dataDir).rootKey, 'utf8')).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);

    for (const [passphrase, message] of [
      [undefined, /encrypted: set IMPRINT_CA_PASSPHRASE/],
      ['wrong', /wrong passphrase/],
    ] as const) {
      const instance = await openInstance(dataDir, { passphrase });
      expect(() => instance.signing()).toThrow(message);
      await instance.close();
    }
    const server = await startServer({ dataDir, host: '127.0.0.1', port: 0, passphrase: 'correct horse' });
    await server.close();
  });
});

describe('importing an existing issuing CA', () => {
  function opensslCa(dir: string) {
    const ext = join(dir, 'ext.cnf');
    writeFileSync(ext, 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n');
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', join(dir, 'root.key'), '-out', join(dir, 'root.pem'), '-subj', '/CN=Offline Root', '-days', '3650']);
    openssl(['req', '-new', ...ec, '-keyout', join(dir, 'issuer.key'), '-out', join(dir, 'issuer.csr'), '-subj', '/CN=Imported Issuing CA']);
    openssl([
      'x509', '-req', '-in', join(dir, 'issuer.csr'), '-CA', join(dir, 'root.pem'), '-CAkey', join(dir, 'root.key'),
      '-CAcreateserial', '-days', '1825', '-extfile', ext, '-out', join(dir, 'issuer.pem'),
    ]);
    return {
      certificatePem: readFileSync(join(dir, 'issuer.pem'), 'utf8'),
      keyPem: readFileSync(join(dir, 'issuer.key'), 'utf8'),
      chainPem: readFileSync(join(dir, 'root.pem'), 'utf8'),
      keyPassphrase: undefined,
    };
  }

  it('serves with the imported CA, keeps no root key, and issues certificates that verify to the offline root', async () => {
    const dir = tempDir();
    const imported = opensslCa(dir);
    const dataDir = join(dir, 'data');
    await initInstance(dataDir, { importCa: imported });
    expect(() => readFileSync(caPaths(dataDir).rootKey)).toThrow();
    expect(readFileSync(caPaths(dataDir).root, 'utf8')).toBe(imported.chainPem);

    const t = await startTestServer(dataDir);
    try {
      const { token } = await t.mintToken();
      const key = await generateDeviceKey();
      const response = await call(`${t.url}/v1/enroll`, { ca: t.rootPem, json: { csr: buildCsr(key, 'imported-1') }, headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(201);
      expect(opensslVerify(response.body.certificate, join(dir, 'root.pem'), join(dir, 'issuer.pem'))).toMatch(/OK/);
      expect(opensslText(response.body.certificate)).toContain('Issuer: CN = Imported Issuing CA');
    } finally {
      await t.destroy();
    }
  });

  it.each([
    { name: 'key/not-matching', mutate: (ca: ReturnType<typeof opensslCa>, other: ReturnType<typeof opensslCa>) => ({ ...ca, keyPem: other.keyPem }), message: /does not belong/ },
    { name: 'chain/wrong-root', mutate: (ca: ReturnType<typeof opensslCa>, other: ReturnType<typeof opensslCa>) => ({ ...ca, chainPem: other.chainPem }), message: /chain is broken/ },
    { name: 'chain/empty', mutate: (ca: ReturnType<typeof opensslCa>) => ({ ...ca, chainPem: '' }), message: /no certificate/ },
  ])('refuses $name and writes nothing', async ({ mutate, message }) => {
    const dir = tempDir();
    const ca = opensslCa(join(dir));
    const otherDir = tempDir();
    const other = opensslCa(otherDir);
    const dataDir = join(dir, 'data');
    await expect(initInstance(dataDir, { importCa: mutate(ca, other) })).rejects.toThrow(message);
    expect(() => readFileSync(caPaths(dataDir).issuer)).toThrow();
    // Nothing claimed the store either: the same init with the right files goes through.
    await initInstance(dataDir, { importCa: ca });
    expect(readFileSync(caPaths(dataDir).issuer, 'utf8')).toContain('BEGIN CERTIFICATE');
  });
});

describe('CA files without settings', () => {
  it('are refused with the way out, not served on made-up URLs, and init then starts over', async () => {
    const first = join(tempDir(), 'data');
    await initInstance(first, { publicUrl: 'https://enroll.example.com' });
    // What an init that died after writing the CA files but before its commit leaves behind.
    const dataDir = join(tempDir(), 'data');
    cpSync(join(first, 'ca'), join(dataDir, 'ca'), { recursive: true });
    await expect(openInstance(dataDir)).rejects.toThrow(/holds CA files but no settings: restore imprint.db from a backup .*remove .*ca and run imprint init again/);
    await expect(startServer({ dataDir, host: '127.0.0.1', port: 0 })).rejects.toThrow(/holds CA files but no settings/);
  });
});
